{{/*
Helpers shared by the templates, the Go-template counterparts of hydrant's
partials (templates/_partials/*.hbs). Helpers that need both the root
context and a component take a dict: (dict "root" $ "component" "app"),
plus "name" for wandb.metadata and "port" for wandb.service.
*/}}

{{/* The selector labels of one component; the argument is the component. */}}
{{- define "wandb.selectorLabels" -}}
app.kubernetes.io/name: wandb
app.kubernetes.io/instance: wandb
app.kubernetes.io/component: {{ . }}
{{- end }}

{{/* Every label of a component's objects: the selector labels, then the
rest, which carry the channel version and never enter a selector. */}}
{{- define "wandb.labels" -}}
{{ include "wandb.selectorLabels" .component }}
app.kubernetes.io/part-of: wandb
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Values.channel.version | quote }}
{{- end }}

{{/* An object's name, namespace and labels. */}}
{{- define "wandb.metadata" -}}
name: {{ .name }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "wandb.labels" . | nindent 2 }}
{{- end }}

{{/* The pod's serviceAccountName of a subsystem (app, console, parquet,
weave): its own ServiceAccount when serviceAccount.create, else the named
one, else none. */}}
{{- define "wandb.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount -}}
{{- if $sa.create }}
serviceAccountName: {{ $sa.name | default (printf "wandb-%s" .component) | quote }}
{{- else if $sa.name }}
serviceAccountName: {{ $sa.name | quote }}
{{- end }}
{{- end }}

{{/* A subsystem's ClusterIP Service on its `http` port (or the port named
by "portName"), and its ServiceAccount when serviceAccount.create. */}}
{{- define "wandb.service" -}}
{{- $portName := .portName | default "http" }}
---
apiVersion: v1
kind: Service
metadata:
  {{- include "wandb.metadata" (dict "root" .root "name" (printf "wandb-%s" .component) "component" .component) | nindent 2 }}
spec:
  type: ClusterIP
  selector:
    {{- include "wandb.selectorLabels" .component | nindent 4 }}
  ports:
    - name: {{ $portName }}
      port: {{ .port }}
      targetPort: {{ $portName }}
      protocol: TCP
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if and $sa $sa.create }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  {{- include "wandb.metadata" (dict "root" .root "name" ($sa.name | default (printf "wandb-%s" .component)) "component" .component) | nindent 2 }}
{{- end }}
{{- end }}

{{/* The environment shared by the containers of the wandb/local image (app,
parquet, weave): host, license, MySQL, Redis and object storage.
Credentials only ever as secretKeyRef; connection strings are assembled by
Kubernetes from $(VAR) references. */}}
{{- define "wandb.commonEnv" -}}
{{- $g := .Values.global -}}
- name: HOST
  value: {{ required "global.host must be set to the public URL, e.g. https://wandb.example.com" $g.host | quote }}
- name: LICENSE
  valueFrom:
    secretKeyRef:
      name: {{ required "global.licenseSecret.name must name the Secret that holds the W&B license" (dig "licenseSecret" "name" "" $g) | quote }}
      key: {{ required "global.licenseSecret.key must name the key of the license in that Secret" (dig "licenseSecret" "key" "" $g) | quote }}
- name: MYSQL_HOST
  value: {{ required "global.mysql.host must be set" $g.mysql.host | quote }}
- name: MYSQL_PORT
  value: {{ $g.mysql.port | quote }}
- name: MYSQL_DATABASE
  value: {{ $g.mysql.database | quote }}
- name: MYSQL_USER
  value: {{ $g.mysql.user | quote }}
- name: MYSQL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "global.mysql.passwordSecret.name must name the Secret that holds the MySQL password" (dig "passwordSecret" "name" "" $g.mysql) | quote }}
      key: {{ required "global.mysql.passwordSecret.key must name the key of the password in that Secret" (dig "passwordSecret" "key" "" $g.mysql) | quote }}
- name: MYSQL
  value: "mysql://$(MYSQL_USER):$(MYSQL_PASSWORD)@$(MYSQL_HOST):$(MYSQL_PORT)/$(MYSQL_DATABASE)"
{{- if $g.redis.host }}
- name: REDIS_HOST
  value: {{ $g.redis.host | quote }}
- name: REDIS_PORT
  value: {{ $g.redis.port | quote }}
{{- if $g.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "global.redis.auth.secret must name the Secret that holds the Redis password" $g.redis.auth.secret | quote }}
      key: {{ required "global.redis.auth.key must name the key of the password in that Secret" $g.redis.auth.key | quote }}
- name: REDIS
  value: "redis://:$(REDIS_PASSWORD)@$(REDIS_HOST):$(REDIS_PORT)"
{{- else }}
- name: REDIS
  value: "redis://$(REDIS_HOST):$(REDIS_PORT)"
{{- end }}
{{- if $g.redis.caCert }}
- name: REDIS_CA_CERT_PATH
  value: /etc/ssl/certs/redis_ca.pem
{{- end }}
{{- else if .Values.redis.install }}
- name: REDIS_HOST
  value: wandb-redis
- name: REDIS_PORT
  value: "6379"
- name: REDIS
  value: "redis://$(REDIS_HOST):$(REDIS_PORT)"
{{- end }}
{{- with $g.bucket }}
{{- if not $g.extraEnv.BUCKET }}
- name: BUCKET_NAME
  value: {{ required "set global.bucket.name (or remove global.bucket and set global.extraEnv.BUCKET)" .name | quote }}
{{- if eq .provider "s3" }}
- name: BUCKET
  value: "s3://$(BUCKET_NAME)"
{{- if .region }}
- name: AWS_REGION
  value: {{ .region | quote }}
{{- end }}
{{- if .kmsKey }}
- name: AWS_S3_KMS_ID
  value: {{ .kmsKey | quote }}
{{- end }}
{{- with .accessKeySecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- with .secretKeySecret }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- end }}
{{- if eq .provider "gcs" }}
- name: BUCKET
  value: "gs://$(BUCKET_NAME)"
{{- end }}
{{- if eq .provider "az" }}
- name: AZURE_STORAGE_ACCOUNT
  value: {{ required "global.bucket.accountName must name the Azure storage account" .accountName | quote }}
- name: BUCKET
  value: "az://$(AZURE_STORAGE_ACCOUNT)/$(BUCKET_NAME)"
{{- with .secretKeySecret }}
- name: AZURE_STORAGE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name | quote }}
      key: {{ .key | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $g.extraEnv.BUCKET_QUEUE }}
- name: BUCKET_QUEUE
  value: "internal://"
{{- end }}
{{- end }}

{{/* global.extraEnv: every key an environment variable of every W&B
container, its value a string. */}}
{{- define "wandb.extraEnv" -}}
{{- range $name, $value := .Values.global.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* global.redis.parameters as REDIS_PARAM_<key> variables, through the
wandb-redis-params ConfigMap: an `envFrom:` key or nothing. */}}
{{- define "wandb.redisEnvFrom" -}}
{{- if and .Values.global.redis.host .Values.global.redis.parameters }}
envFrom:
  - prefix: REDIS_PARAM_
    configMapRef:
      name: wandb-redis-params
{{- end }}
{{- end }}

{{/* The Redis CA mount and volume (when global.redis.caCert is set). */}}
{{- define "wandb.redisCaMount" -}}
- name: redis-ca
  mountPath: /etc/ssl/certs/redis_ca.pem
  subPath: redis_ca.pem
  readOnly: true
{{- end }}

{{- define "wandb.redisCaVolume" -}}
- name: redis-ca
  configMap:
    name: wandb-redis-ca
{{- end }}
