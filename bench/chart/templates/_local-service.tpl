{{/* A service of the wandb/local image run with ONLY_SERVICE (parquet,
weave): a Deployment sharing the app's MySQL, Redis and bucket settings, its
Service and, when serviceAccount.create, its ServiceAccount. Takes (dict
"root" $ "component" NAME "only" ONLY_SERVICE "port" PORT). */}}
{{- define "wandb.localService" -}}
{{- $root := .root }}
{{- $v := index $root.Values .component }}
{{- $caCert := $root.Values.global.redis.caCert }}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "wandb.metadata" (dict "root" $root "name" (printf "wandb-%s" .component) "component" .component) | nindent 2 }}
spec:
  replicas: {{ $v.replicas }}
  selector:
    matchLabels:
      {{- include "wandb.selectorLabels" .component | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "wandb.labels" . | nindent 8 }}
      {{- if $caCert }}
      annotations:
        checksum/redis-ca: {{ sha256sum $caCert }}
      {{- end }}
    spec:
      {{- include "wandb.serviceAccountName" . | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: "{{ $v.image.repository }}:{{ $v.image.tag }}"
          imagePullPolicy: IfNotPresent
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          env:
            - name: ONLY_SERVICE
              value: {{ .only }}
            {{- include "wandb.commonEnv" $root | nindent 12 }}
            {{- include "wandb.extraEnv" $root | nindent 12 }}
          {{- include "wandb.redisEnvFrom" $root | nindent 10 }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 5
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 30
            periodSeconds: 10
            failureThreshold: 3
          {{- if $caCert }}
          volumeMounts:
            {{- include "wandb.redisCaMount" . | nindent 12 }}
          {{- end }}
      {{- if $caCert }}
      volumes:
        {{- include "wandb.redisCaVolume" . | nindent 8 }}
      {{- end }}
{{ include "wandb.service" . }}
{{- end }}
