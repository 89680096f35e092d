// The kill switch file (`killSwitch.file`): while it exists, the kill switch is engaged. Polled, so it also
// works on volumes without inotify (Kubernetes Secret/ConfigMap mounts, NFS).
import { existsSync, unwatchFile, watchFile } from 'node:fs';

export interface KillSwitchFile {
  /** Watches `path` (null: none) instead of the file watched so far; reports its state at once. */
  follow(path: string | null): void;
  close(): void;
}

export function createKillSwitchFile(set: (engaged: boolean) => void, intervalMs = 250): KillSwitchFile {
  let current: string | null = null;
  return {
    follow(path) {
      if (path === current) return;
      if (current) unwatchFile(current);
      current = path;
      if (!path) {
        set(false);
        return;
      }
      set(existsSync(path));
      watchFile(path, { interval: intervalMs, persistent: false }, (curr) => set(curr.nlink > 0 || curr.mtimeMs > 0));
    },
    close() {
      if (current) unwatchFile(current);
    },
  };
}
