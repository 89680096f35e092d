{{/*
Sidecar mode: named templates that put Sluice in a workload's pod. A pod that uses them:

  spec:
    initContainers:
      {{- include "sluice.sidecar.initContainers" . | nindent 6 }}
    containers:
      - name: app
        env:
          {{- include "sluice.sidecar.proxyEnv" (dict "root" . "tokenSecret" $secret "identity" "agent") | nindent 10 }}
    volumes:
      {{- include "sluice.sidecar.volumes" . | nindent 6 }}

Order matters. `sluice` is a native sidecar (restartPolicy: Always): its startupProbe holds back the next init
container and the app containers until it serves, it outlives them, and it restarts alone if it dies (while
it is down the rules leave the pod with zero egress, not degraded egress). `sluice-iptables` runs second, when
Sluice is up, because setup.sh's self-test after apply needs Sluice reachable and a direct connection refused.
The app containers start only after both, so no app code ever runs before the rules are in place.

`sluice-iptables` runs as root with NET_ADMIN and NET_RAW: the pod's namespace must allow the Pod Security
level `privileged` (pod-security.kubernetes.io/enforce: privileged). The workload must never run as UID 10001,
Sluice's UID, which the rules exempt. The ConfigMap the sidecar mounts is this release's: pods that use the
templates live in the release's namespace.
*/}}

{{- define "sluice.sidecar.initContainers" -}}
- {{ include "sluice.container" . | nindent 2 | trim }}
  restartPolicy: Always
- {{ include "sluice.sidecar.iptablesContainer" . | nindent 2 | trim }}
{{- if .Values.inspection.enabled }}
- {{ include "sluice.ca.bundleContainer" . | nindent 2 | trim }}
{{- end }}
{{- end -}}

{{/*
The rules: rendered from the same sluice.yaml (ports) for Sluice's UID, applied atomically, self-tested.
`--test-uid current`: the self-test connects as this container's own UID (root, which the rules do not exempt)
instead of switching UID, which would take CAP_SETUID and CAP_SETGID on top of NET_ADMIN and NET_RAW.
*/}}
{{- define "sluice.sidecar.firewallCommand" -}}
- sh
- -ec
- >-
  sluice firewall render --mode sidecar --config {{ include "sluice.configPath" . }} > /tmp/sluice.rules &&
  exec /app/iptables/setup.sh apply /tmp/sluice.rules --test-uid current{{ if not .Values.firewall.ipv6 }} --no-ipv6{{ end }}
{{- end -}}

{{- define "sluice.sidecar.iptablesContainer" -}}
name: sluice-iptables
image: {{ include "sluice.firewallImage" . }}
imagePullPolicy: {{ .Values.firewallImage.pullPolicy }}
command:
  {{- include "sluice.sidecar.firewallCommand" . | nindent 2 }}
{{- with .Values.firewall.backend }}
env:
  - { name: IPTABLES_BACKEND, value: {{ . | quote }} }
{{- end }}
securityContext:
  runAsUser: 0
  runAsGroup: 0
  runAsNonRoot: false
  allowPrivilegeEscalation: false
  privileged: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: [ALL]
    add: [NET_ADMIN, NET_RAW]
  seccompProfile:
    type: RuntimeDefault
resources:
  requests: { cpu: 10m, memory: 32Mi }
  limits: { cpu: 200m, memory: 128Mi }
volumeMounts:
  - { name: sluice-config, mountPath: /etc/sluice, readOnly: true }
  - { name: sluice-iptables-tmp, mountPath: /tmp }
  - { name: sluice-iptables-run, mountPath: /run }
{{- end -}}

{{/* Call with the root context, or (dict "root" $ "injected" true) for the injector. */}}
{{- define "sluice.sidecar.volumes" -}}
{{- $injected := and (kindIs "map" .) (hasKey . "injected") .injected -}}
{{- $root := ternary .root . (and (kindIs "map" .) (hasKey . "root")) -}}
{{ include "sluice.volumes" (dict "root" $root "injected" $injected) }}
- name: sluice-iptables-tmp
  emptyDir: { medium: Memory, sizeLimit: 4Mi }
- name: sluice-iptables-run
  emptyDir: { medium: Memory, sizeLimit: 1Mi }
{{- if $root.Values.inspection.enabled }}
{{ include "sluice.ca.volumes" (dict "root" $root "injected" $injected) }}
{{- end }}
{{- end -}}

{{/*
The workload's proxy settings: both spellings of each variable (tools disagree on case), Node's opt-in, and
a run token from a Secret. Call with (dict "root" $ "tokenSecret" (dict "name" N "key" K) "identity" ID).
*/}}
{{- define "sluice.sidecar.proxyEnv" -}}
- name: SLUICE_TOKEN
  valueFrom:
    secretKeyRef: { name: {{ .tokenSecret.name }}, key: {{ .tokenSecret.key }} }
{{- $url := printf "http://%s:$(SLUICE_TOKEN)@127.0.0.1:3128" .identity }}
{{- range $name := list "HTTP_PROXY" "HTTPS_PROXY" "http_proxy" "https_proxy" }}
- { name: {{ $name }}, value: {{ $url | quote }} }
{{- end }}
- { name: NO_PROXY, value: "localhost,127.0.0.1,::1" }
- { name: no_proxy, value: "localhost,127.0.0.1,::1" }
- { name: NODE_USE_ENV_PROXY, value: "1" }
{{- if .root.Values.inspection.enabled }}
{{- include "sluice.ca.env" .root }}
{{- end }}
{{- end -}}
