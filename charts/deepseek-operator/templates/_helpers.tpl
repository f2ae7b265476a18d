{{/* Names and labels shared by every template. */}}

{{- define "deepseek-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "deepseek-operator.fullname" -}}
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

{{- define "deepseek-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deepseek-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "deepseek-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "deepseek-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: deepseek-operator
{{- end }}

{{- define "deepseek-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "deepseek-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "deepseek-operator.peeringName" -}}
{{- default (include "deepseek-operator.fullname" .) .Values.peering.name }}
{{- end }}

{{- define "deepseek-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "deepseek-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "deepseek-operator.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "deepseek-operator.fullname" .)) .Values.webhook.certificate.existingSecret }}
{{- end }}

{{- define "deepseek-operator.webhookConfigurationName" -}}
{{- default (printf "%s.deepseek.serving.dev" (include "deepseek-operator.fullname" .)) .Values.webhook.configurationName }}
{{- end }}
