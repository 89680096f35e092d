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

{{/* repository@digest when a digest is given (it pins the image), else repository:tag. */}}
{{- define "sluice.imageRef" -}}
{{- if .img.digest -}}
{{- printf "%s@%s" .img.repository .img.digest -}}
{{- else -}}
{{- printf "%s:%s" .img.repository (default .root.Chart.AppVersion .img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- include "sluice.imageRef" (dict "img" .Values.image "root" .) -}}
{{- end -}}

{{- define "sluice.firewallImage" -}}
{{- include "sluice.imageRef" (dict "img" .Values.firewallImage "root" .) -}}
{{- end -}}

{{/* Where workloads send their requests: the pod's own Sluice (sidecar), or the gateway Service. */}}
{{- define "sluice.proxyHost" -}}
{{- if eq .Values.mode "sidecar" -}}127.0.0.1
{{- else -}}{{ default (printf "%s.%s.svc" (include "sluice.fullname" .) .Release.Namespace) .Values.service.clusterIP }}
{{- end -}}
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
{{- if $root.Values.inspection.enabled -}}
{{- $_ := set $cfg "inspection" (dict "caCertFile" "/run/secrets/sluice-ca/ca.crt" "caKeyFile" "/run/secrets/sluice-ca/ca.key") -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
What Sluice reads only at start: a change to these restarts the pods (checksum/restart). Everything else in
sluice.yaml is reloaded in place from the mounted ConfigMap, which Sluice polls.
*/}}
{{- define "sluice.restartChecksum" -}}
{{- $c := .Values.config -}}
{{- $limits := default (dict) $c.limits -}}
{{- $fixed := dict "mode" .Values.mode "dnsGuard" .Values.dnsGuard "dns" $c.dns "upstream" $c.upstream "workers" $c.workers "containment" $c.containment "headersTimeoutMs" $limits.headersTimeoutMs "idleTimeoutMs" $limits.idleTimeoutMs "inspection" .Values.inspection -}}
{{- toJson $fixed | sha256sum -}}
{{- end -}}

{{/* Pod Security Standard `restricted`, for every container that is not the iptables init container;
containerSecurityContext / podSecurityContext are merged over it (the schema keeps the result restricted). */}}
{{- define "sluice.restrictedSecurityContext" -}}
{{- $base := dict "runAsNonRoot" true "runAsUser" 10001 "runAsGroup" 10001 "allowPrivilegeEscalation" false "readOnlyRootFilesystem" true "privileged" false "capabilities" (dict "drop" (list "ALL")) "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- toYaml (mergeOverwrite $base (deepCopy (default (dict) .Values.containerSecurityContext))) -}}
{{- end -}}

{{- define "sluice.restrictedPodSecurityContext" -}}
{{- $base := dict "runAsNonRoot" true "runAsUser" 10001 "runAsGroup" 10001 "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- toYaml (mergeOverwrite $base (deepCopy (default (dict) .Values.podSecurityContext))) -}}
{{- end -}}

{{/* Secrets at the paths the config names; config at /etc/sluice; /tmp writable. With (dict "root" $
"injected" true) the config comes from the pod's own annotation sluice.dev/config (the injector puts it there:
a ConfigMap cannot be mounted from another namespace). */}}
{{- define "sluice.volumes" -}}
{{- $injected := and (kindIs "map" .) (hasKey . "injected") .injected -}}
{{- $root := ternary .root . (and (kindIs "map" .) (hasKey . "root")) -}}
{{- with $root }}
- name: sluice-config
  {{- if $injected }}
  downwardAPI:
    defaultMode: 0444
    items: [{ path: sluice.yaml, fieldRef: { fieldPath: "metadata.annotations['sluice.dev/config']" } }]
  {{- else }}
  configMap:
    name: {{ include "sluice.fullname" . }}
  {{- end }}
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
      {{- if .Values.inspection.enabled }}
      # The inspection CA: key and certificate, for Sluice's container only (the workload gets the certificate).
      - secret:
          name: {{ .Values.inspection.secret.name }}
          items:
            - { key: {{ .Values.inspection.secret.certKey }}, path: sluice-ca/ca.crt }
            - { key: {{ .Values.inspection.secret.keyKey }}, path: sluice-ca/ca.key }
      {{- end }}
- name: sluice-tmp
  emptyDir: { medium: Memory, sizeLimit: 16Mi }
{{- end }}
{{- end -}}

{{- define "sluice.volumeMounts" -}}
- { name: sluice-config, mountPath: /etc/sluice, readOnly: true }
- { name: sluice-secrets, mountPath: /run/secrets, readOnly: true }
- { name: sluice-tmp, mountPath: /tmp }
{{- end -}}

{{/* Workload side of inspection: the CA certificate (from the Secret, or from the injector's annotation) and
a bundle of the system roots plus that CA, written by an init container into a shared emptyDir. */}}
{{- define "sluice.ca.volumes" -}}
{{- $injected := .injected -}}
{{- with .root }}
- name: sluice-ca-cert
  {{- if $injected }}
  downwardAPI:
    defaultMode: 0444
    items: [{ path: ca.crt, fieldRef: { fieldPath: "metadata.annotations['sluice.dev/ca.crt']" } }]
  {{- else }}
  secret:
    secretName: {{ .Values.inspection.secret.name }}
    defaultMode: 0444
    # The certificate only: the workload never sees the key.
    items: [{ key: {{ .Values.inspection.secret.certKey }}, path: ca.crt }]
  {{- end }}
- name: sluice-ca-bundle
  emptyDir: { medium: Memory, sizeLimit: 2Mi }
{{- end }}
{{- end -}}

{{- define "sluice.ca.volumeMounts" -}}
- { name: sluice-ca-cert, mountPath: /etc/sluice-ca/cert, readOnly: true }
- { name: sluice-ca-bundle, mountPath: /etc/sluice-ca/bundle, readOnly: true }
{{- end -}}

{{- define "sluice.ca.env" -}}
{{- range $name := list "SSL_CERT_FILE" "REQUESTS_CA_BUNDLE" "PIP_CERT" "CURL_CA_BUNDLE" "GIT_SSL_CAINFO" "NPM_CONFIG_CAFILE" }}
- { name: {{ $name }}, value: /etc/sluice-ca/bundle/ca-bundle.pem }
{{- end }}
- { name: NODE_EXTRA_CA_CERTS, value: /etc/sluice-ca/cert/ca.crt }
{{- end -}}

{{/* Writes the bundle (system roots, then the CA) before any workload container starts. */}}
{{- define "sluice.ca.bundleContainer" -}}
name: sluice-ca-bundle
image: {{ include "sluice.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
command:
  - sh
  - -ec
  - sluice ca bundle --ca-cert /etc/sluice-ca/cert/ca.crt > /etc/sluice-ca/bundle/ca-bundle.pem
securityContext:
  {{- include "sluice.restrictedSecurityContext" . | nindent 2 }}
resources:
  requests: { cpu: 10m, memory: 32Mi }
  limits: { memory: 128Mi }
volumeMounts:
  - { name: sluice-ca-cert, mountPath: /etc/sluice-ca/cert, readOnly: true }
  - { name: sluice-ca-bundle, mountPath: /etc/sluice-ca/bundle }
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
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
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
{{- if gt (int .Values.preStopSleepSeconds) 0 }}
# Out of the Service's endpoints before SIGTERM starts the drain, so no new connection lands on a draining pod.
lifecycle:
  preStop:
    exec: { command: ["sleep", "{{ .Values.preStopSleepSeconds }}"] }
{{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- include "sluice.restrictedSecurityContext" . | nindent 2 }}
volumeMounts:
  {{- include "sluice.volumeMounts" . | nindent 2 }}
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
