{{/* The release's name for objects: "<release>-kdbridge", or "<release>" when it already says kdbridge. */}}
{{- define "kdbridge.fullname" -}}
{{- if contains "kdbridge" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-kdbridge" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kdbridge.selectorLabels" -}}
app.kubernetes.io/name: kdbridge
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kdbridge.labels" -}}
{{ include "kdbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kdbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "kdbridge.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The secret whose keys are mounted under /run/secrets/kdbridge, or "" when none. */}}
{{- define "kdbridge.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else if .Values.secrets.values -}}
{{- include "kdbridge.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* Refuses values that cannot work, with the reason. */}}
{{- define "kdbridge.validate" -}}
{{- $backend := .Values.state.backend -}}
{{- if not (has $backend (list "bbolt" "postgres")) -}}
{{- fail (printf "state.backend must be bbolt or postgres, not %q" $backend) -}}
{{- end -}}
{{- if and (eq $backend "bbolt") (ne (int .Values.replicaCount) 1) -}}
{{- fail (printf "replicaCount is %d, but the bbolt store is one file that one process holds: use replicaCount: 1, or state.backend: postgres for several replicas" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount must be at least 1" -}}
{{- end -}}
{{- if and (eq $backend "postgres") (not (include "kdbridge.secretName" .)) -}}
{{- fail (printf "state.backend postgres reads its DSN from the secrets (key %q): set secrets.existingSecret or secrets.values" .Values.state.postgres.dsnKey) -}}
{{- end -}}
{{- if and (eq $backend "postgres") (not .Values.secrets.existingSecret) (not (hasKey .Values.secrets.values .Values.state.postgres.dsnKey)) -}}
{{- fail (printf "state.backend postgres reads its DSN from secrets.values.%s, which is not set" .Values.state.postgres.dsnKey) -}}
{{- end -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (kindIs "float64" $pdb.minAvailable) (ge (int $pdb.minAvailable) (int .Values.replicaCount)) -}}
{{- fail (printf "podDisruptionBudget.minAvailable %d with %d replica(s) would block every node drain: lower it, or run more replicas (state.backend: postgres)" (int $pdb.minAvailable) (int .Values.replicaCount)) -}}
{{- end -}}
{{- range $k := list "http" "state" -}}
{{- if hasKey ($.Values.config | default dict) $k -}}
{{- fail (printf "config.%s is set by the chart (http.listen 0.0.0.0:9090; state from .Values.state): remove it from config" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The configuration file: the user's config plus the keys the chart owns. */}}
{{- define "kdbridge.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $_ := set $cfg "http" (dict "listen" "0.0.0.0:9090") -}}
{{- if eq .Values.state.backend "postgres" -}}
{{- $_ := set $cfg "state" (dict "backend" "postgres" "dsn_file" (printf "/run/secrets/kdbridge/%s" .Values.state.postgres.dsnKey)) -}}
{{- else -}}
{{- $_ := set $cfg "state" (dict "dir" "/data") -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
