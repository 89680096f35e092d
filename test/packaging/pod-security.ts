// The Pod Security Standards' `restricted` profile (Kubernetes 1.29+: baseline plus restricted controls), as a
// pure check over a pod spec, so tests can say which container breaks which rule.
// https://kubernetes.io/docs/concepts/security/pod-security-standards/
import type { IPodSpec, ISecurityContext } from 'kubernetes-models/v1';

const RESTRICTED_VOLUMES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const SELINUX_TYPES = new Set<string | undefined>([
  undefined,
  '',
  'container_t',
  'container_init_t',
  'container_kvm_t',
  'container_engine_t',
]);
const PROFILES = new Set<string | undefined>(['RuntimeDefault', 'Localhost']);

export interface Violation {
  readonly container: string | null;
  readonly rule: string;
}

/** Every `restricted` violation of a pod spec; [] when it complies. */
export function restrictedViolations(spec: IPodSpec): Violation[] {
  const out: Violation[] = [];
  const bad = (container: string | null, rule: string) => out.push({ container, rule });
  const podSc = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) bad(null, 'host namespaces');
  for (const v of spec.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name');
    if (!type || !RESTRICTED_VOLUMES.has(type)) bad(null, `volume type ${type}`);
  }
  for (const s of podSc.sysctls ?? []) if (!SAFE_SYSCTLS.has(s.name)) bad(null, `sysctl ${s.name}`);
  if (!SELINUX_TYPES.has(podSc.seLinuxOptions?.type) || podSc.seLinuxOptions?.user || podSc.seLinuxOptions?.role)
    bad(null, 'seLinuxOptions');
  if (podSc.runAsUser === 0) bad(null, 'runAsUser 0');
  if (podSc.seccompProfile && !PROFILES.has(podSc.seccompProfile.type)) bad(null, 'seccompProfile');
  if (podSc.appArmorProfile && !PROFILES.has(podSc.appArmorProfile.type)) bad(null, 'appArmorProfile');
  if (podSc.windowsOptions?.hostProcess) bad(null, 'hostProcess');

  const containers = [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
  for (const c of containers) {
    const sc: ISecurityContext = c.securityContext ?? {};
    const name: string = c.name;
    if (sc.privileged) bad(name, 'privileged');
    if (sc.windowsOptions?.hostProcess) bad(name, 'hostProcess');
    if (sc.procMount && sc.procMount !== 'Default') bad(name, 'procMount');
    if (!SELINUX_TYPES.has(sc.seLinuxOptions?.type) || sc.seLinuxOptions?.user || sc.seLinuxOptions?.role)
      bad(name, 'seLinuxOptions');
    for (const p of c.ports ?? []) if (p.hostPort) bad(name, 'hostPort');
    if (sc.allowPrivilegeEscalation !== false) bad(name, 'allowPrivilegeEscalation must be false');
    const nonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
    if (nonRoot !== true) bad(name, 'runAsNonRoot must be true');
    if (sc.runAsUser === 0) bad(name, 'runAsUser 0');
    const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
    if (!PROFILES.has(seccomp)) bad(name, 'seccompProfile must be RuntimeDefault or Localhost');
    if (sc.appArmorProfile && !PROFILES.has(sc.appArmorProfile.type)) bad(name, 'appArmorProfile');
    const drop: string[] = sc.capabilities?.drop ?? [];
    if (!drop.includes('ALL')) bad(name, 'capabilities must drop ALL');
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') bad(name, `capability ${cap}`);
  }
  return out;
}
