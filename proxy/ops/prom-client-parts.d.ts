// prom-client declares types for its index only. Sluice imports the modules it uses one by one (proxy/ops/metrics.ts
// says why); each is the class or function its index re-exports under the same name.
declare module 'prom-client/lib/registry.js' {
  export { Registry as default } from 'prom-client';
}
declare module 'prom-client/lib/counter.js' {
  export { Counter as default } from 'prom-client';
}
declare module 'prom-client/lib/gauge.js' {
  export { Gauge as default } from 'prom-client';
}
declare module 'prom-client/lib/histogram.js' {
  export { Histogram as default } from 'prom-client';
}
declare module 'prom-client/lib/cluster.js' {
  export { AggregatorRegistry as default } from 'prom-client';
}
/** One of the default metrics collectDefaultMetrics() registers: (registry, config) → registers its metrics. */
declare module 'prom-client/lib/metrics/*' {
  import type { Registry } from 'prom-client';
  const register: (registry: Registry, config: { readonly eventLoopMonitoringPrecision?: number }) => void;
  export default register;
}
