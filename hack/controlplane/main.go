// Command dialkube is Dial's local Kubernetes control plane for tests: one binary
// whose subcommands are the real components, built from k8s.io/kubernetes.
//
//	dialkube etcd --data-dir D --client-port P --peer-port Q   embedded etcd (go.etcd.io/etcd/server/v3/embed)
//	dialkube kube-apiserver ...                                   app.NewAPIServerCommand
//	dialkube kube-controller-manager ...                          app.NewControllerManagerCommand
//	dialkube kube-scheduler ...                                   app.NewSchedulerCommand
//	dialkube kubelet ...                                          k8s.io/kubernetes/cmd/kubelet/app
//	dialkube kube-proxy ...                                       k8s.io/kubernetes/cmd/kube-proxy/app
//	dialkube gpu-device-plugin --count N                          fake nvidia.com/gpu devices (gpuplugin.go)
//	dialkube kubectl ...                                          k8s.io/kubectl/pkg/cmd
//	dialkube pki --dir D --server URL                             CA, serving/client certs, SA keys, kubeconfigs
//
// Each component runs as its own process of this binary (hack/cluster starts them);
// that keeps their global state (flags, metrics registries, feature gates) apart.
package main

import (
	"context"
	"fmt"
	"os"
	_ "time/tzdata" // CronJob time zones, as in cmd/kube-apiserver

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: dialkube {etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kube-proxy|gpu-device-plugin|kubectl|pki} [flags]")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	sub := os.Args[1]
	// Each component parses os.Args[1:] as its own flags.
	os.Args = append([]string{sub}, os.Args[2:]...)
	switch sub {
	case "etcd":
		os.Exit(runEtcd(os.Args[1:]))
	case "pki":
		os.Exit(runPKI(os.Args[1:]))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserverapp.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(cmapp.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(schedapp.NewSchedulerCommand()))
	case "kubelet":
		os.Exit(cli.Run(kubeletapp.NewKubeletCommand(context.Background())))
	case "kube-proxy":
		os.Exit(cli.Run(proxyapp.NewProxyCommand()))
	case "gpu-device-plugin":
		os.Exit(runGPUDevicePlugin(os.Args[1:]))
	case "kubectl":
		command := kubectlcmd.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
	default:
		usage()
	}
}
