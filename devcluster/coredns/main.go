// Command coredns is a lean CoreDNS for the real-node tier (devcluster/realnode.py): only the
// plugins its Corefile uses, so headless Service names (`<pod>.<svc>`, Volcano's `<pod>.<job>`)
// resolve from the cluster's EndpointSlices, and every other name gets a fast NXDOMAIN.
// Its own module, like kwok's, so CoreDNS's dependency graph never meets the Kubernetes build's.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

func init() {
	// The plugins' order in a server block is this list's (upstream's plugin.cfg order, filtered).
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "log", "cache", "template", "kubernetes"}
}

func main() {
	coremain.Run()
}
