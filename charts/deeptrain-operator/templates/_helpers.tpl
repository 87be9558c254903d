{{/* Chart name, overridable for forks that rename the chart. */}}
{{- define "deeptrain-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of namespaced objects. Truncated to 63 characters because it is also used as a label
value and a DNS label (Service name).
*/}}
{{- define "deeptrain-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "deeptrain-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "deeptrain-operator.labels" -}}
helm.sh/chart: {{ include "deeptrain-operator.chart" . }}
{{ include "deeptrain-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: deeptrain
{{- end }}

{{/* Immutable subset used by the Deployment's selector and the Service: never add to it. */}}
{{- define "deeptrain-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deeptrain-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "deeptrain-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "deeptrain-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "deeptrain-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "deeptrain-operator.trainerImage" -}}
{{- with .Values.operator.trainerImage }}
{{- printf "%s:%s" .repository (default $.Chart.AppVersion .tag) }}
{{- end }}
{{- end }}

{{/* Serving runs the trainer image's inference code unless another repository or tag is named. */}}
{{- define "deeptrain-operator.serveImage" -}}
{{- $trainer := .Values.operator.trainerImage }}
{{- with .Values.operator.serveImage }}
{{- printf "%s:%s" (default $trainer.repository .repository) (default (default $.Chart.AppVersion $trainer.tag) .tag) }}
{{- end }}
{{- end }}
