// Command kubelet is the real node's kubelet (devcluster/realnode.py), built from the same
// k8s.io/kubernetes v1.37.2 module as the control plane's multi-call binary (../main.go), so both
// share one dependency graph and one go.mod/go.sum. A separate main, not a sixth command of the
// multi-call binary: the kube build and its stamp stay exactly as they are.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	// The registrations the upstream kubelet main makes: the JSON log format and the client and
	// version metrics.
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
