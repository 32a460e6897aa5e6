{{/* Chart name. */}}
{{- define "glimpse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless overridden. */}}
{{- define "glimpse.fullname" -}}
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

{{/* Common labels. */}}
{{- define "glimpse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "glimpse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: glimpse
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "ranking"). */}}
{{- define "glimpse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "glimpse.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "glimpse.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "glimpse.apiKeySecret" -}}
{{ .Values.auth.existingSecret | default (printf "%s-api-keys" (include "glimpse.fullname" .)) }}
{{- end }}

{{- define "glimpse.storeSecret" -}}
{{ .Values.objectStore.existingSecret | default (printf "%s-object-store" (include "glimpse.fullname" .)) }}
{{- end }}

{{/* The object store: fully qualified, so that pods in other namespaces (data.argo.namespace) reach the bundled MinIO too. */}}
{{- define "glimpse.storeEndpoint" -}}
{{- if .Values.objectStore.endpoint }}{{ .Values.objectStore.endpoint }}{{ else }}http://{{ include "glimpse.fullname" . }}-minio.{{ .Release.Namespace }}.svc:9000{{ end }}
{{- end }}

{{- define "glimpse.scheme" -}}
{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end }}

{{/* Argo executor: the namespace the workflows (and the WorkflowTemplate) live in. */}}
{{- define "glimpse.argoNamespace" -}}
{{ .Values.data.argo.namespace | default .Release.Namespace }}
{{- end }}

{{/* The ServiceAccount the workflow pods (and artifact GC) run as. */}}
{{- define "glimpse.workflowServiceAccount" -}}
{{ include "glimpse.fullname" . }}-workflow
{{- end }}

{{/* Secret with the write API key the pipeline's sync step sends (key `api-key`). */}}
{{/* Bucket notifications for watched bucket collections: "true" when on (the bundled MinIO only: the chart configures its webhook target). */}}
{{- define "glimpse.storageEvents" -}}
{{- if and .Values.data.collections.notifications.enabled .Values.minio.enabled (not .Values.objectStore.endpoint) }}true{{ end }}
{{- end }}

{{/* The bundled MinIO's notification target: its id in MINIO_NOTIFY_WEBHOOK_*_<id>, and its ARN. */}}
{{- define "glimpse.storageEventsTarget" -}}
GLIMPSE
{{- end }}

{{- define "glimpse.storageEventsArn" -}}
arn:minio:sqs::{{ include "glimpse.storageEventsTarget" . }}:webhook
{{- end }}

{{/* The webhook's write key (MinIO's auth token; every service accepts it besides auth.apiKeys). */}}
{{- define "glimpse.storageEventsKeySecret" -}}
{{ include "glimpse.fullname" . }}-storage-events-key
{{- end }}

{{/* Where MinIO posts its events: the gateway Service's ReceiveStorageEvents path. */}}
{{- define "glimpse.storageEventsUrl" -}}
{{ include "glimpse.scheme" . }}://{{ include "glimpse.fullname" . }}-gateway.{{ .Release.Namespace }}.svc:{{ .Values.gateway.port }}/v1/storage-events
{{- end }}

{{- define "glimpse.pipelineKeySecret" -}}
{{ include "glimpse.fullname" . }}-pipeline-key
{{- end }}

{{/* The WorkflowTemplate: files/workflowtemplate.yaml, a copy of argo/workflowtemplate.yaml (helm/chart.test.ts keeps them identical). */}}
{{- define "glimpse.workflowTemplateFile" -}}
{{ .Files.Get "files/workflowtemplate.yaml" }}
{{- end }}

{{/* The collection sync's WorkflowTemplate: files/collection-workflowtemplate.yaml, a copy of argo/collection-workflowtemplate.yaml (helm/chart.test.ts keeps them identical). */}}
{{- define "glimpse.collectionWorkflowTemplateFile" -}}
{{ .Files.Get "files/collection-workflowtemplate.yaml" }}
{{- end }}

{{/*
A WorkflowTemplate as this release installs it: (dict "ctx" $ "file" "glimpse.workflowTemplateFile"),
"file" naming the helper that gives the file. The file itself, with only the release's names in it:
the Argo namespace, the chart's labels merged over the file's, the workflow ServiceAccount, this
release's image, bucket, object store and Secrets as the defaults of the parameters the file
declares (those it does not declare are left out), the chart's image pull policy, and
data.argo.stepResources merged over the resources of the steps they name.
*/}}
{{- define "glimpse.workflowTemplate" -}}
{{- $ctx := .ctx }}
{{- $wft := include .file $ctx | fromYaml }}
{{- $_ := set $wft.metadata "namespace" (include "glimpse.argoNamespace" $ctx) }}
{{- $_ := set $wft.metadata "labels" (merge (include "glimpse.labels" $ctx | fromYaml) $wft.metadata.labels) }}
{{- $_ := set $wft.spec "serviceAccountName" (include "glimpse.workflowServiceAccount" $ctx) }}
{{- $defaults := dict
  "image" (include "glimpse.image" $ctx)
  "bucket" $ctx.Values.objectStore.bucket
  "minio-endpoint" (include "glimpse.storeEndpoint" $ctx)
  "store-secret" (include "glimpse.storeSecret" $ctx)
  "sync-url" (include "glimpse.argoSyncUrl" $ctx)
  "sync-secret" (include "glimpse.pipelineKeySecret" $ctx)
}}
{{- range $wft.spec.arguments.parameters }}
{{- if hasKey $defaults .name }}
{{- $_ := set . "value" (get $defaults .name) }}
{{- end }}
{{- end }}
{{- range $wft.spec.templates }}
{{- if .container }}
{{- $_ := set .container "imagePullPolicy" $ctx.Values.image.pullPolicy }}
{{- $resources := get ($ctx.Values.data.argo.stepResources | default dict) .name }}
{{- if $resources }}
{{- $_ := set .container "resources" (mergeOverwrite (deepCopy .container.resources) $resources) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $wft }}
{{- end }}

{{/* Where the workflow's sync step POSTs the published version: the gateway's /data/register, by its cluster DNS name. */}}
{{- define "glimpse.argoSyncUrl" -}}
{{ include "glimpse.scheme" . }}://{{ include "glimpse.fullname" . }}-gateway.{{ .Release.Namespace }}.svc:{{ .Values.gateway.port }}/data/register
{{- end }}
