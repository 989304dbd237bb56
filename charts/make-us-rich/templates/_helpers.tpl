{{- define "mkrich.labels" -}}
app.kubernetes.io/name: make-us-rich
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mkrich.image" -}}
{{- $root := index . 0 -}}{{- $role := index . 1 -}}
{{- printf "%s/make-us-rich-%s:%s" $root.Values.image.registry $role (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- end -}}

{{- define "mkrich.modelName" -}}
{{- printf "%s-close" (lower .) -}}
{{- end -}}

{{- define "mkrich.podSecurity" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mkrich.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
capabilities:
  drop: ["ALL"]
{{- end -}}
