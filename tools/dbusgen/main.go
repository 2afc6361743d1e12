// SPDX-License-Identifier: Apache-2.0

// Command dbusgen turns the D-Bus introspection XML in idl/ into Go code and
// a Markdown API reference. Output is deterministic.
//
// It writes two packages. The public one (-out, gen/bluechi) is the client
// library: name constants, struct types, typed clients of the public
// interfaces with their signals and errors, and the small runtime they need,
// so that it uses nothing but the standard library and godbus. The daemons'
// one (-api, internal/daemonapi) holds what only the daemons need: server
// interfaces, Unimplemented embeds and export helpers of every interface,
// and everything of the org.eclipse.bluechi.internal interfaces, built on
// internal/dbusrt, with their wire bindings on internal/wireconn
// (wire_*.go: servers over the same server interfaces, clients, signal
// encoders and decoders, signature constants).
//
// The interfaces of -client-idl (idl/systemd: the part of systemd's API the
// agent calls, and of the message bus's org.freedesktop.DBus) get wire
// clients in the daemons' package and nothing else: they are not BlueChi's
// API, so they stay out of the public package, the docs and the interface
// registry.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	idlDir := flag.String("idl", "idl", "directory of interface XML files")
	outDir := flag.String("out", "gen/bluechi", "directory of the public client package")
	pkg := flag.String("pkg", "bluechi", "Go package name of the public package")
	apiDir := flag.String("api", "internal/daemonapi", "directory of the daemons' package")
	apiPkg := flag.String("apipkg", "daemonapi", "Go package name of the daemons' package")
	rt := flag.String("runtime", "github.com/bluechi-go/bluechi/internal/dbusrt", "import path of the daemons' runtime package")
	prefix := flag.String("prefix", "org.eclipse.bluechi.", "interface name prefix left out of Go names")
	docs := flag.String("docs", "gen/docs/api.md", "Markdown API reference to write (empty: none)")
	tests := flag.String("tests", "", "round-trip test file to write (empty: none)")
	module := flag.String("module", "github.com/bluechi-go/bluechi", "module path, to import the output packages")
	clientIDL := flag.String("client-idl", "", "directory of interface XML files the daemons only call (idl/systemd): wire clients in the daemons' package, nothing else")
	names := flag.String("names", "", "directory of the leaf package of the client-only interfaces' names and signatures (empty: none)")
	flag.Parse()
	o := options{idlDir: *idlDir, outDir: *outDir, pkg: *pkg, apiDir: *apiDir, apiPkg: *apiPkg, rt: *rt,
		prefix: *prefix, docs: *docs, tests: *tests, module: *module, clientIDL: *clientIDL, names: *names}
	if err := o.run(); err != nil {
		fmt.Fprintln(os.Stderr, "dbusgen:", err)
		os.Exit(1)
	}
}

type options struct {
	idlDir, outDir, pkg, apiDir, apiPkg, rt, prefix, docs, tests, module string
	clientIDL, names                                                     string
}

func (o *options) gen() *goGen {
	g := newGoGen(o.pkg, o.module+"/"+filepath.ToSlash(o.outDir), o.apiPkg, o.rt, o.prefix)
	if o.names != "" {
		g.namesPkg, g.namesImport = filepath.Base(o.names), o.module+"/"+filepath.ToSlash(o.names)
	}
	return g
}

func (o *options) run() error {
	ifs, err := LoadDir(o.idlDir)
	if err != nil {
		return err
	}
	var clientIfs []*Interface
	if o.clientIDL != "" {
		if clientIfs, err = LoadDir(o.clientIDL); err != nil {
			return err
		}
	}
	g := o.gen()
	pub, api, err := Generate(ifs, clientIfs, g)
	if err != nil {
		return err
	}
	if err := g.clientOnlyFiles(clientIfs, api); err != nil {
		return err
	}
	if g.namesPkg != "" {
		data, err := g.namesFile(clientIfs, g.namesPkg)
		if err != nil {
			return err
		}
		if err := writeDir(o.names, map[string][]byte{"names.go": data}); err != nil {
			return err
		}
	}
	var wired []*Interface
	for _, i := range ifs {
		if !g.public(i) {
			wired = append(wired, i)
		}
	}
	if api["wire_roundtrip_gen_test.go"], err = g.wireTestFile(append(wired, clientIfs...)); err != nil {
		return err
	}
	if err := writeDir(o.outDir, pub); err != nil {
		return err
	}
	if err := writeDir(o.apiDir, api); err != nil {
		return err
	}
	if o.docs != "" {
		if err := os.MkdirAll(filepath.Dir(o.docs), 0o755); err != nil {
			return err
		}
		if err := writeIfChanged(o.docs, markdown(ifs)); err != nil {
			return err
		}
	}
	if o.tests == "" {
		return nil
	}
	g = o.gen()
	tg := &testGen{g: g, pubTypes: newQualified(o.pkg + "."), apiImport: o.module + "/" + filepath.ToSlash(o.apiDir)}
	data, err := tg.file(ifs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.tests), 0o755); err != nil {
		return err
	}
	return writeIfChanged(o.tests, data)
}

// writeDir writes files into dir and removes the generated files there
// that no longer have a source. Test files (example_test.go) are never
// touched.
func writeDir(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range old {
		if _, keep := files[filepath.Base(f)]; keep || strings.HasSuffix(f, "_test.go") {
			continue
		}
		if data, err := os.ReadFile(f); err == nil && isGenerated(data) {
			os.Remove(f)
		}
	}
	for name, data := range files {
		if err := writeIfChanged(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}

// isGenerated reports whether a file was written by this tool.
func isGenerated(data []byte) bool {
	head, _, _ := bytes.Cut(data, []byte("\n\n"))
	return bytes.Contains(head, []byte("// Code generated by "+toolName+" "))
}

// Generate returns the Go files (by base name) of the public package and of
// the daemons' package. client are the client-only interfaces (-client-idl):
// the public package's runtime takes the standard interfaces' names from
// them.
func Generate(ifs, client []*Interface, g *goGen) (pub, api map[string][]byte, err error) {
	pub, api = map[string][]byte{}, map[string][]byte{}
	var srcs []string
	seen := map[string]string{}
	for _, i := range ifs {
		n := g.goName(i.Name)
		if prev, dup := seen[n]; dup {
			return nil, nil, fmt.Errorf("interfaces %s and %s both map to Go name %s", prev, i.Name, n)
		}
		seen[n] = i.Name
		// Every struct type lives in the public package.
		for _, m := range i.Members {
			if m.Kind == "property" {
				g.types.goType(m.Type)
			}
			for _, a := range m.Args {
				g.types.goType(a.Type)
			}
		}
		name := fileName(strings.TrimPrefix(i.Name, g.prefix))
		if g.public(i) {
			data, err := g.pubFile(i)
			if err != nil {
				return nil, nil, err
			}
			pub[name] = data
		}
		data, err := g.apiFile(i)
		if err != nil {
			return nil, nil, err
		}
		api[name] = data
		if !g.public(i) {
			data, err := g.wireFile(i, true)
			if err != nil {
				return nil, nil, err
			}
			api["wire_"+name] = data
		}
		srcs = append(srcs, i.File)
	}
	files := []struct {
		into map[string][]byte
		name string
		make func() ([]byte, error)
	}{
		{pub, "types.go", func() ([]byte, error) { return g.typesFile(srcs) }},
		{pub, "errors.go", func() ([]byte, error) { return g.errorsFile(ifs) }},
		{pub, "runtime.go", func() ([]byte, error) { return g.runtimeFile(client) }},
		{pub, "doc.go", g.docFile},
		{api, "interfaces.go", func() ([]byte, error) { return g.registryFile(ifs) }},
		{api, "wire.go", g.wireRuntimeFile},
	}
	for _, f := range files {
		data, err := f.make()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.name, err)
		}
		f.into[f.name] = data
	}
	return pub, api, nil
}

// fileName maps "internal.Agent.Metrics" to "internal_agent_metrics.go".
func fileName(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, ".", "_")) + ".go"
}

func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return os.WriteFile(path, data, 0o644)
}
