{{/* Objects are named after the release (or fullnameOverride). */}}
{{- define "sentiment-stream.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels deploy/k8s/base puts on every object and selector, plus the release's instance. */}}
{{- define "sentiment-stream.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/component: consumer
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sentiment-stream.labels" -}}
{{ include "sentiment-stream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "sentiment-stream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sentiment-stream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The existing Secret of Kafka credentials (kafka.<property> keys). */}}
{{- define "sentiment-stream.kafkaSecret" -}}
{{- default (printf "%s-kafka" (include "sentiment-stream.fullname" .)) .Values.kafka.existingSecret -}}
{{- end -}}

{{- define "sentiment-stream.image" -}}
{{- $tag := default (printf "%s-%s" .Chart.AppVersion .Values.image.variant) .Values.image.tag -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The settings ConfigMap's data: the chart's own keys, then the free-form settings. */}}
{{- define "sentiment-stream.settings" -}}
{{- $s := dict -}}
{{- range $k, $v := .Values.settings }}{{ $_ := set $s $k (toString $v) }}{{ end -}}
{{- $_ := set $s "SENTIMENT_BOOTSTRAP_SERVERS" .Values.kafka.bootstrapServers -}}
{{- $_ := set $s "SENTIMENT_INPUT_TOPIC" .Values.kafka.inputTopic -}}
{{- $_ := set $s "SENTIMENT_OUTPUT_TOPIC" .Values.kafka.outputTopic -}}
{{- $_ := set $s "SENTIMENT_DLQ_TOPIC" .Values.kafka.dlqTopic -}}
{{- $_ := set $s "SENTIMENT_GROUP_ID" .Values.kafka.groupId -}}
{{- $_ := set $s "SENTIMENT_HTTP_PORT" (toString .Values.metricsPort) -}}
{{- if .Values.modelVolume.enabled }}{{ $_ := set $s "SENTIMENT_MODEL" .Values.modelVolume.model }}{{ end -}}
{{- range $k := keys $s | sortAlpha }}
{{ $k }}: {{ get $s $k | quote }}
{{- end -}}
{{- end -}}
