// Command kube is a multi-call binary holding the Kubernetes control-plane
// components jobwarden's local test cluster needs: kube-apiserver,
// kube-controller-manager, kube-scheduler, kubectl and etcd, all at one pinned
// release. It dispatches on its own name (symlinks named after a component) or
// on its first argument, and builds only the chosen command, because each
// NewXCommand constructor performs one-off global setup.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "time/tzdata"
)

var commands = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kubectl":                 kubectlcmd.NewDefaultKubectlCommand,
}

func main() {
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if name != "etcd" && commands[name] == nil {
		if len(args) == 0 {
			usage()
		}
		name, args = args[0], args[1:]
	}
	if name == "etcd" {
		// etcdmain.Main reads os.Args itself and expects the program name first.
		etcdmain.Main(append([]string{"etcd"}, args...))
		return
	}
	build, ok := commands[name]
	if !ok {
		usage()
	}
	cmd := build()
	cmd.SetArgs(args)
	os.Exit(cli.Run(cmd))
}

func usage() {
	names := []string{"etcd"}
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: kube COMPONENT [flags]\ncomponents: %v\n", names)
	os.Exit(2)
}
