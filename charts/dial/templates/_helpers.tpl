{{/* Names, labels and image references shared by the templates. */}}

{{- define "dial.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dial.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "dial.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "dial.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dial.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "dial.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dial
{{- end -}}

{{- define "dial.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dial.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "dial.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "dial.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is pinned. */}}
{{- define "dial.imageRef" -}}
{{- $image := index . 0 -}}
{{- $appVersion := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $appVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "dial.operatorImage" -}}
{{- include "dial.imageRef" (list .Values.image .Chart.AppVersion) -}}
{{- end -}}

{{/* The collector runs `dial collect` from the same package: it defaults to the operator's image. */}}
{{- define "dial.collectorImage" -}}
{{- $image := merge (dict) .Values.collector.image -}}
{{- if not $image.repository -}}
{{- $image = .Values.image -}}
{{- end -}}
{{- include "dial.imageRef" (list $image .Chart.AppVersion) -}}
{{- end -}}

{{/* Namespaces that get the collector's ServiceAccount and Role: where trial pods run. */}}
{{- define "dial.collectorNamespaces" -}}
{{- $namespaces := .Values.watchNamespaces -}}
{{- if not $namespaces -}}
{{- $namespaces = default (list .Release.Namespace) .Values.collector.namespaces -}}
{{- end -}}
{{- toJson (uniq $namespaces) -}}
{{- end -}}

{{/*
What `dial operator` does in a namespace it watches (operator/dial/kube/client.py and kopf's watches).
Bound with a Role per watched namespace, or a ClusterRole when it watches all of them.
*/}}
{{- define "dial.operatorNamespacedRules" -}}
# Experiments: kopf lists and watches them; the reconciler reads one fresh (get) per change and the
# resync loop lists them. The operator never edits or deletes an Experiment's spec.
- apiGroups: ["dial.dev"]
  resources: ["experiments"]
  verbs: ["get", "list", "watch"]
# Trials: watched (kopf), listed per experiment, read back when a create finds one (get), created
# one per proposal. Never updated or deleted: the garbage collector deletes them with the Experiment.
- apiGroups: ["dial.dev"]
  resources: ["trials"]
  verbs: ["get", "list", "watch", "create"]
# Status subresources: merge patches of the Experiment's status and the operator's share of a Trial's.
- apiGroups: ["dial.dev"]
  resources: ["experiments/status", "trials/status"]
  verbs: ["patch"]
# Trials and Jobs carry ownerReferences with blockOwnerDeletion; with the
# OwnerReferencesPermissionEnforcement admission plugin that needs update on the owner's finalizers.
- apiGroups: ["dial.dev"]
  resources: ["experiments/finalizers", "trials/finalizers"]
  verbs: ["update"]
# Jobs: watched (kopf) and listed per experiment to follow trials, created one per trial, deleted
# (background propagation) to stop a trial early or when the experiment ends.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
# Pods: watched and listed to see a trial's container states, exit codes and reasons.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Logs: the last lines of a failed trial's training container go into the Trial's message.
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# ServiceAccounts: read when a trial's Job has no pod, to name a missing collector ServiceAccount.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
# PersistentVolumeClaims: a pbt experiment that names no checkpoint claim gets one, created before its first Job
# and read before the Jobs of each reconcile (is it still this Experiment's?). Never deleted by the operator:
# the Experiment owns it, so the garbage collector deletes it with the Experiment.
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "create"]
# Events on Experiments (trial created, stopped, experiment finished); kopf's own posting is off.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# ConfigMaps: read (one, by name) when an Experiment keeps its trial template in one (trialTemplate.configMap).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
{{- end -}}
