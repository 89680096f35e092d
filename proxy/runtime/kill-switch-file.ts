// The kill switch file (`killSwitch.file`): while it exists, the kill switch is engaged. Polled, so it also
// works on volumes without inotify (Kubernetes Secret/ConfigMap mounts, NFS).
import { statSync } from 'node:fs';
import { stat } from 'node:fs/promises';

export interface KillSwitchFile {
  /** Watches `path` (null: none) instead of the file watched so far; reports its state at once. */
  follow(path: string | null): void;
  close(): void;
}

// Only "there is nothing at that path" disengages. Any other failure to look (EACCES, EIO, a symlink loop) is
// an error in a decision and counts as engaged: an emergency stop must not be lifted by a broken mount.
const engagedAfter = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException).code;
  return code !== 'ENOENT' && code !== 'ENOTDIR';
};

const engagedNow = (path: string): boolean => {
  try {
    statSync(path);
    return true;
  } catch (err) {
    return engagedAfter(err);
  }
};

export function createKillSwitchFile(set: (engaged: boolean) => void, intervalMs = 250): KillSwitchFile {
  let current: string | null = null;
  let timer: NodeJS.Timeout | null = null;
  let reported: boolean | null = null;
  let checking: string | null = null;
  const report = (engaged: boolean) => {
    if (engaged === reported) return;
    reported = engaged;
    set(engaged);
  };
  // Each poll asks whether the file exists now, rather than fs.watchFile's "did the stat change": watchFile
  // takes its first stat asynchronously, so a file created between the check at follow() and that stat became
  // its baseline and the switch stayed off while the file existed. The check is async so a hung volume stalls
  // only the poll of that path, never the event loop.
  const poll = (path: string) => {
    if (checking === path) return;
    checking = path;
    stat(path).then(() => true, engagedAfter).then((engaged) => {
      if (checking === path) checking = null;
      if (path === current) report(engaged);
    });
  };
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };
  return {
    follow(path) {
      if (path === current) return;
      stop();
      current = path;
      if (!path) {
        report(false);
        return;
      }
      report(engagedNow(path));
      timer = setInterval(() => poll(path), intervalMs);
      timer.unref();
    },
    close: stop,
  };
}
