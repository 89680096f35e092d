{{/* The sidecar injector (mutating admission webhook). See values.yaml `injector` and docs/kubernetes.md. */}}
{{- define "sluice.injector.name" -}}{{ include "sluice.fullname" . | trunc 54 | trimSuffix "-" }}-injector{{- end -}}

{{- define "sluice.injector.selectorLabels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/component: injector
{{- end -}}

{{- define "sluice.injector.tlsSecret" -}}
{{- if eq .Values.injector.tls.source "secret" -}}{{ .Values.injector.tls.secretName }}{{- else -}}{{ include "sluice.injector.name" . }}-tls{{- end -}}
{{- end -}}

{{/*
What the injector adds to a pod, rendered from the same named templates as the sidecar example: the webhook
only splices this in (proxy/webhook/inject.ts). SLUICE_IDENTITY and SLUICE_TOKEN are added by the webhook,
per pod, before these variables, which expand them.
*/}}
{{- define "sluice.injector.config" -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
{{- $url := printf "http://$(SLUICE_IDENTITY):$(SLUICE_TOKEN)@%s:3128" (include "sluice.proxyHost" .) -}}
mode: {{ .Values.mode }}
sluiceUid: {{ include "sluice.uid" . }}
identity: {{ .Values.injector.identity | quote }}
{{- if .Values.injector.tokenSecret.name }}
tokenSecret: { name: {{ .Values.injector.tokenSecret.name | quote }}, key: {{ .Values.injector.tokenSecret.key | quote }} }
{{- else }}
tokenSecret: null
{{- end }}
caCertFile: {{ ternary "/etc/sluice-injector/ca/ca.crt" "null" .Values.inspection.enabled }}
inject:
  annotations:
    {{- if $sidecar }}
    # The sidecar's sluice.yaml travels with the pod (a ConfigMap cannot be mounted across namespaces).
    sluice.dev/config: |
      {{- include "sluice.config" (dict "root" . "listenHost" "127.0.0.1") | nindent 6 }}
    {{- else }}
    {}
    {{- end }}
  labels:
    {{- if $sidecar }}
    sluice.dev/sidecar: "true"
    {{- else }}
    {}
    {{- end }}
  initContainers:
    {{- if $sidecar }}
    {{- include "sluice.sidecar.initContainers" . | nindent 4 }}
    {{- else if .Values.inspection.enabled }}
    - {{ include "sluice.ca.bundleContainer" . | nindent 6 | trim }}
    {{- else }}
    []
    {{- end }}
  volumes:
    {{- if $sidecar }}
    {{- include "sluice.sidecar.volumes" (dict "root" . "injected" true) | nindent 4 }}
    {{- else if .Values.inspection.enabled }}
    {{- include "sluice.ca.volumes" (dict "root" . "injected" true) | nindent 4 }}
    {{- else }}
    []
    {{- end }}
  env:
    {{- range $name := list "HTTP_PROXY" "HTTPS_PROXY" "http_proxy" "https_proxy" }}
    - { name: {{ $name }}, value: {{ $url | quote }} }
    {{- end }}
    - { name: NO_PROXY, value: "localhost,127.0.0.1,::1" }
    - { name: no_proxy, value: "localhost,127.0.0.1,::1" }
    - { name: NODE_USE_ENV_PROXY, value: "1" }
    {{- if .Values.inspection.enabled }}
    {{- include "sluice.ca.env" . | nindent 4 }}
    {{- end }}
  volumeMounts:
    {{- if .Values.inspection.enabled }}
    {{- include "sluice.ca.volumeMounts" . | nindent 4 }}
    {{- else }}
    []
    {{- end }}
  # No container of an injected pod may become Sluice's UID (sidecar: its traffic is exempt from the rules).
  dropCapabilities: {{ ternary "[SETUID, SETGID]" "[]" $sidecar }}
{{- end -}}
