//go:build tools

package main

// The helm v3 CLI is built from this module (go build helm.sh/helm/v3/cmd/helm),
// so its k8s.io/* modules follow the replace lines in go.mod.
import _ "helm.sh/helm/v3/cmd/helm"
