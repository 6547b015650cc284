{{/*
Helpers. Every helper takes a context dict: (dict "root" $ "values" <callwarden values>).
Inside this chart that is (dict "root" $ "values" .Values); an orchestrator chart that has
this chart as a dependency passes (dict "root" $ "values" .Values.callwarden), so names
computed here match the objects this chart renders (they depend on values and the release
name only, never on the calling chart's name).

Orchestrator chart usage (pod template):

  {{- $cw := dict "root" $ "values" .Values.callwarden }}
  metadata:
    labels:
      {{- include "callwarden.sidecarPodLabels" $cw | nindent 8 }}
    annotations:
      {{- include "callwarden.sidecarPodAnnotations" $cw | nindent 8 }}
  spec:
    containers:
      - name: orchestrator
        ...
      {{- include "callwarden.sidecar" $cw | nindent 6 }}
    volumes:
      {{- include "callwarden.sidecarVolumes" $cw | nindent 6 }}
*/}}

{{- define "callwarden.name" -}}
{{- .values.nameOverride | default "callwarden" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callwarden.fullname" -}}
{{- if .values.fullnameOverride -}}
{{- .values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "callwarden.name" . -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "callwarden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callwarden.name" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "callwarden.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "callwarden.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: callwarden
{{- end -}}

{{- define "callwarden.rulesConfigMapName" -}}
{{- .values.existingConfigMap | default (printf "%s-rules" (include "callwarden.fullname" . | trunc 57 | trimSuffix "-")) -}}
{{- end -}}

{{- define "callwarden.serviceAccountName" -}}
{{- if .values.serviceAccount.create -}}
{{- .values.serviceAccount.name | default (include "callwarden.fullname" .) -}}
{{- else -}}
{{- .values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "callwarden.image" -}}
{{- $img := .values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository ($img.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Proxy listen address: loopback for a sidecar, all interfaces for a gateway. */}}
{{- define "callwarden.listenAddress" -}}
{{- .values.proxy.listenAddress | default (ternary "0.0.0.0" "127.0.0.1" (eq .values.mode "standalone")) -}}
{{- end -}}

{{/* The inline rules file: `rules` is a mapping, or a string (helm --set-file rules=f.yaml). */}}
{{- define "callwarden.rulesText" -}}
{{- if kindIs "string" .values.rules -}}
{{- .values.rules -}}
{{- else if eq .values.mode "standalone" -}}
{{- /* Callers reach a standalone gateway by its Service names: each must be a proxy
       name (listen.allowed_hosts, DNS-rebinding protection) or its Host is refused. */ -}}
{{- $rules := deepCopy .values.rules -}}
{{- $listen := deepCopy (default (dict) (get $rules "listen")) -}}
{{- $hosts := default (list) (get $listen "allowed_hosts") -}}
{{- $_ := set $listen "allowed_hosts" (concat $hosts (include "callwarden.serviceHosts" . | fromYamlArray) | uniq) -}}
{{- $_ := set $rules "listen" $listen -}}
{{- toYaml $rules -}}
{{- else -}}
{{- toYaml .values.rules -}}
{{- end -}}
{{- end -}}

{{/* The names the standalone Service answers to, short to fully qualified. */}}
{{- define "callwarden.serviceHosts" -}}
{{- $svc := include "callwarden.fullname" . -}}
{{- $ns := .root.Release.Namespace -}}
{{- $domain := .values.standalone.service.clusterDomain | default "cluster.local" -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns $domain) | toYaml -}}
{{- end -}}

{{/* sha256 of the inline rules; empty with hot reload or an existing ConfigMap. */}}
{{- define "callwarden.rulesChecksum" -}}
{{- if and (not .values.hotReload) (not .values.existingConfigMap) -}}
{{- include "callwarden.rulesText" . | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* Labels for pods that carry the sidecar (the PodMonitor selects them). */}}
{{- define "callwarden.sidecarPodLabels" -}}
callwarden.io/proxy: {{ include "callwarden.fullname" . }}
{{- end -}}

{{/* Pod annotations: the rules checksum that rolls pods when inline rules change. */}}
{{- define "callwarden.sidecarPodAnnotations" -}}
{{- $sum := include "callwarden.rulesChecksum" . -}}
{{- if $sum -}}
checksum/callwarden-rules: {{ $sum }}
{{- else if .values.hotReload -}}
callwarden.io/hot-reload: "true"
{{- else -}}
callwarden.io/rules-configmap: {{ include "callwarden.rulesConfigMapName" . }}
{{- end -}}
{{- end -}}

{{- define "callwarden.probe" -}}
{{- $probe := index .values .probe -}}
{{- if $probe.enabled -}}
{{ .probe }}:
  httpGet:
    path: {{ $probe.path }}
    port: {{ .values.proxy.adminPortName }}
  {{- toYaml (omit $probe "enabled" "path") | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* The proxy container (one list item). Used by the sidecar and standalone modes. */}}
{{- define "callwarden.container" -}}
{{- $v := .values -}}
- name: {{ $v.sidecar.containerName }}
  image: {{ include "callwarden.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if and (ne $v.mode "standalone") $v.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  {{- with $v.proxy.extraArgs }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  env:
    - name: CALLWARDEN_RULES
      value: {{ $v.rulesMountPath | quote }}
    - name: CALLWARDEN_LISTEN
      value: {{ printf "%s:%d" (include "callwarden.listenAddress" .) (int $v.proxy.port) | quote }}
    - name: CALLWARDEN_ADMIN
      value: {{ printf "%s:%d" $v.proxy.adminAddress (int $v.proxy.adminPort) | quote }}
    {{- if and (eq $v.mode "standalone") $v.standalone.requireVerifiedIdentity }}
    {{- /* A shared gateway: any pod could write X-Caller-Role; rules must verify tokens. */}}
    - name: CALLWARDEN_REQUIRE_IDENTITY
      value: "1"
    {{- end }}
    {{- with $v.proxy.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: {{ $v.proxy.portName }}
      containerPort: {{ $v.proxy.port }}
      protocol: TCP
    - name: {{ $v.proxy.adminPortName }}
      containerPort: {{ $v.proxy.adminPort }}
      protocol: TCP
  {{- range $p := list "startupProbe" "livenessProbe" "readinessProbe" }}
  {{- with include "callwarden.probe" (dict "values" $v "probe" $p) }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: callwarden-rules
      mountPath: {{ $v.rulesMountPath }}
      readOnly: true
    - name: callwarden-tmp
      mountPath: /tmp
    {{- range $v.secretMounts }}
    - name: {{ printf "callwarden-secret-%s" .name | trunc 63 | trimSuffix "-" }}
      mountPath: {{ .mountPath }}
      readOnly: true
    {{- end }}
{{- end -}}

{{/* The sidecar container, to include under an orchestrator pod's containers (or
initContainers with sidecar.native). */}}
{{- define "callwarden.sidecar" -}}
{{- include "callwarden.container" . -}}
{{- end -}}

{{/* Volumes the proxy container mounts: rules, /tmp and Secrets (list items). */}}
{{- define "callwarden.sidecarVolumes" -}}
{{- $v := .values -}}
- name: callwarden-rules
  configMap:
    name: {{ include "callwarden.rulesConfigMapName" . }}
- name: callwarden-tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ $v.tmpSizeLimit }}
{{- range $v.secretMounts }}
- name: {{ printf "callwarden-secret-%s" .name | trunc 63 | trimSuffix "-" }}
  secret:
    secretName: {{ .secretName }}
    defaultMode: {{ .defaultMode | default 0444 }}
    {{- with .items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
{{- end -}}
