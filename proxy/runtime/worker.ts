// A worker process (config `workers` > 1): the proxy listeners on ports shared with the other workers, and
// nothing else. It serves only with the config and kill switch the primary sent it, applies every later
// change in order and acknowledges it, and stops serving the moment its primary is gone (it could no longer
// learn of a kill switch). Signals are the primary's to handle: it drains every worker.
import { deepFreeze } from '../../firewall/config.js';
import { createSluice, type Sluice } from './sluice.js';
import { type FromWorker, type HandedCa, type ToWorker, decodeKey, isProtocolMessage } from './worker-protocol.js';
import { type InspectionCa, checkCaMaterial, importCa } from '../inspection/ca.js';
import { SluiceError } from '../../firewall/errors.js';

/** The primary's ephemeral CA, checked as any CA is before it signs a leaf here. */
async function importHandedCa(h: HandedCa): Promise<InspectionCa> {
  const { material, problems } = checkCaMaterial(h.certPem, h.keyPem, Date.now());
  if (!material)
    throw new SluiceError(
      'SLUICE_ERR_CONFIG',
      `the inspection CA from the primary is unusable: ${problems.map((p) => p.message).join('; ')}`,
    );
  return importCa(material, true);
}

export function runWorker(): void {
  let sluice: Sluice | null = null;
  let starting: Promise<unknown> = Promise.resolve();
  const send = (m: FromWorker) => {
    if (process.connected) process.send!(m);
  };

  // A terminal's Ctrl-C, or a service manager signalling the whole group, reaches the workers too: the
  // primary coordinates the drain, so a worker neither dies nor drains on its own.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
  process.on('disconnect', () => {
    sluice?.flushLogs();
    process.exit(1);
  });

  const exit = (code: number) => {
    sluice?.flushLogs();
    process.exit(code);
  };

  process.on('message', (m: unknown) => {
    if (!isProtocolMessage(m)) return;
    const msg = m as ToWorker;
    switch (msg.type) {
      case 'sluice.init': {
        if (sluice) return;
        try {
          sluice = createSluice({
            config: deepFreeze(msg.config),
            tokenKey: decodeKey(msg.tokenKey),
            version: msg.version,
            generatedIdentity: msg.generatedIdentity,
            sharedStdout: true,
            serveAdmin: false,
            inspectionCa: msg.inspectionCa ? importHandedCa(msg.inspectionCa) : null,
          });
        } catch (err) {
          send({ type: 'sluice.fatal', message: (err as Error).message });
          return exit(2);
        }
        // Before anything listens: a worker never serves without the primary's kill switch state.
        sluice.state.setKillSwitch(msg.killSwitch, 'api');
        const s = sluice;
        starting = s.start().then(
          (bound) => send({ type: 'sluice.ready', bound }),
          (err: unknown) => {
            send({ type: 'sluice.fatal', message: (err as Error).message });
            exit(2);
          },
        );
        return;
      }
      case 'sluice.swap': {
        let error: string | null = null;
        try {
          sluice!.state.swap(deepFreeze(msg.config), decodeKey(msg.tokenKey));
        } catch (err) {
          error = (err as Error).message;
        }
        return send({ type: 'sluice.ack', seq: msg.seq, error });
      }
      case 'sluice.token-key':
        sluice!.state.setTokenKey(decodeKey(msg.tokenKey));
        return send({ type: 'sluice.ack', seq: msg.seq, error: null });
      case 'sluice.kill-switch':
        sluice!.state.setKillSwitch(msg.engaged, 'api');
        return send({ type: 'sluice.ack', seq: msg.seq, error: null });
      case 'sluice.revoke':
        sluice!.state.revokeLocal(msg.run, msg.untilS);
        return send({ type: 'sluice.ack', seq: msg.seq, error: null });
      case 'sluice.metrics':
        void sluice!.metrics.registry.getMetricsAsJSON().then(
          (metrics) => send({ type: 'sluice.metrics', seq: msg.seq, metrics }),
          () => send({ type: 'sluice.metrics', seq: msg.seq, metrics: [] }),
        );
        return;
      case 'sluice.drain': {
        const s = sluice!;
        void starting
          .then(() => s.drain(msg.drainMs))
          .then(() => s.stop())
          .finally(() => exit(0));
        return;
      }
    }
  });
  send({ type: 'sluice.hello' });
}
