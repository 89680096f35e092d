{{/* Names and labels. */}}
{{- define "sluice.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The gateway's pods (NetworkPolicy peers, Service and monitor selectors). */}}
{{- define "sluice.gatewaySelectorLabels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "sluice.firewallImage" -}}
{{- printf "%s:%s" .Values.firewallImage.repository (default .Chart.AppVersion .Values.firewallImage.tag) -}}
{{- end -}}

{{/* Fixed facts shared with the Dockerfile and the iptables rules. */}}
{{- define "sluice.uid" -}}10001{{- end -}}
{{- define "sluice.configPath" -}}/etc/sluice/sluice.yaml{{- end -}}

{{/*
sluice.yaml: the operator's policy sections, plus what the chart owns (listeners, secret paths).
Call with (dict "root" $ "listenHost" "0.0.0.0").
*/}}
{{- define "sluice.config" -}}
{{- $root := .root -}}
{{- $cfg := deepCopy $root.Values.config -}}
{{- $listen := dict "http" (printf "%s:3128" .listenHost) "socks5" (printf "%s:1080" .listenHost) "admin" "0.0.0.0:9090" -}}
{{- if and $root.Values.dnsGuard.enabled (eq $root.Values.mode "gateway") -}}
{{- $_ := set $listen "dns" (printf "0.0.0.0:%d" (int $root.Values.dnsGuard.port)) -}}
{{- end -}}
{{- $_ := set $cfg "listen" $listen -}}
{{- $_ := set $cfg "tokens" (merge (dict "keyFile" "/run/secrets/sluice-token-key") (default (dict) $cfg.tokens)) -}}
{{- $_ := set $cfg "admin" (merge (dict "tokenFile" "/run/secrets/sluice-admin-token") (default (dict) $cfg.admin)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Pod Security Standard `restricted`, for every container that is not the iptables init container. */}}
{{- define "sluice.restrictedSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ include "sluice.uid" . }}
runAsGroup: {{ include "sluice.uid" . }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "sluice.restrictedPodSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ include "sluice.uid" . }}
runAsGroup: {{ include "sluice.uid" . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Secrets at the paths the config names; config at /etc/sluice; /tmp writable. */}}
{{- define "sluice.volumes" -}}
- name: sluice-config
  configMap:
    name: {{ include "sluice.fullname" . }}
# 0444 and no fsGroup: only Sluice's container mounts the volume, and an fsGroup would put every container
# of a sidecar pod, the workload too, in Sluice's group.
- name: sluice-secrets
  projected:
    defaultMode: 0444
    sources:
      - secret:
          name: {{ .Values.secrets.tokenKey.name }}
          items: [{ key: {{ .Values.secrets.tokenKey.key }}, path: sluice-token-key }]
      - secret:
          name: {{ .Values.secrets.adminToken.name }}
          items: [{ key: {{ .Values.secrets.adminToken.key }}, path: sluice-admin-token }]
- name: sluice-tmp
  emptyDir: { medium: Memory, sizeLimit: 16Mi }
{{- end -}}

{{- define "sluice.volumeMounts" -}}
- { name: sluice-config, mountPath: /etc/sluice, readOnly: true }
- { name: sluice-secrets, mountPath: /run/secrets, readOnly: true }
- { name: sluice-tmp, mountPath: /tmp }
{{- end -}}

{{- define "sluice.ports" -}}
- { name: http, containerPort: 3128, protocol: TCP }
- { name: socks5, containerPort: 1080, protocol: TCP }
- { name: admin, containerPort: 9090, protocol: TCP }
{{- end -}}

{{/* The Sluice container itself; gateway and sidecar differ only in where it sits. */}}
{{- define "sluice.container" -}}
name: sluice
image: {{ include "sluice.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["serve", "--config", "{{ include "sluice.configPath" . }}"]
env:
  - { name: SLUICE_ENV, value: production }
  - { name: SLUICE_CONFIG, value: {{ include "sluice.configPath" . }} }
ports:
  {{- include "sluice.ports" . | nindent 2 }}
  {{- if and .Values.dnsGuard.enabled (eq .Values.mode "gateway") }}
  - { name: dns, containerPort: {{ .Values.dnsGuard.port }}, protocol: UDP }
  - { name: dns-tcp, containerPort: {{ .Values.dnsGuard.port }}, protocol: TCP }
  {{- end }}
startupProbe:
  httpGet: { path: /healthz, port: admin }
  periodSeconds: 2
  failureThreshold: 30
readinessProbe:
  httpGet: { path: /readyz, port: admin }
  periodSeconds: 5
livenessProbe:
  httpGet: { path: /healthz, port: admin }
  periodSeconds: 10
  failureThreshold: 3
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- include "sluice.restrictedSecurityContext" . | nindent 2 }}
volumeMounts:
  {{- include "sluice.volumeMounts" . | nindent 2 }}
{{- end -}}
