// SPDX-License-Identifier: Apache-2.0

package cluster_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluechi-go/bluechi/internal/cluster"
	"github.com/bluechi-go/bluechi/internal/config"
	"github.com/bluechi-go/bluechi/internal/tlslink"
)

// TestTLSConfigs: the configurations of a cluster with Options.TLS load
// as the daemons load them, UseTLS on, and their files make a mutual TLS
// link in which each node's certificate names that node and the
// controller's certificate passes the agents' default TLSServerName.
func TestTLSConfigs(t *testing.T) {
	dir := t.TempDir()
	names := cluster.DefaultNames(3)
	certs, err := cluster.MakeCerts(dir, names)
	if err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ctrl, err := config.LoadController(config.Options{ConfigFile: write("controller.conf", cluster.ControllerConfig(names, 842, certs, "LogLevel=DEBUG\n")), Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if !ctrl.TLS.Use || ctrl.TLS.Certificate != certs.Controller.Certificate || ctrl.TLS.CA != certs.CAFile || ctrl.Log.Level != "DEBUG" {
		t.Fatalf("controller: %+v", ctrl.TLS)
	}
	h, err := tlslink.Load(ctrl.TLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", cluster.ControllerHost+":0")
	if err != nil {
		t.Fatal(err)
	}
	l := tlslink.NewListener(inner, h, tlslink.ListenerOptions{})
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())

	for i, name := range names {
		agent, err := config.LoadAgent(config.Options{ConfigFile: write("agent-"+name+".conf", cluster.AgentConfig(name, certs, "")), Getenv: noEnv})
		if err != nil {
			t.Fatal(err)
		}
		if !agent.TLS.Use || agent.TLSServerName() != cluster.ControllerHost {
			t.Fatalf("%s: %+v, server name %q", name, agent.TLS, agent.TLSServerName())
		}
		ah, err := tlslink.Load(agent.TLS, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d := tlslink.Dialer{Holder: ah, ServerName: agent.TLSServerName()}
		c, err := d.Dial(ctx, "tcp:host="+agent.ControllerHost+",port="+port)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Write([]byte{0})
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if err := tlslink.CheckNodeName(sc, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if other := names[(i+1)%len(names)]; tlslink.CheckNodeName(sc, other) == nil {
			t.Errorf("%s's certificate names %s", name, other)
		}
		c.Close()
		sc.Close()
	}
	if plain := cluster.AgentConfig("node1", nil, ""); strings.Contains(plain, config.KeyUseTLS) {
		t.Errorf("agent configuration without certificates: %q", plain)
	}
}
