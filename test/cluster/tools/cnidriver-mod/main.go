// Command cnidriver drives a CNI network configuration list through libcni
// in module mode (github.com/containernetworking/cni at the version
// scripts/harness/versions.env pins), the library container runtimes link,
// so podnet's tests and benchmarks exercise plugins exactly the way a
// runtime does, GC and STATUS included.
//
// Usage:
//
//	cnidriver <add|check|del|gc|status> --conflist FILE [flags]
//
// The command line and output are those of the GOPATH-mode driver in
// test/e2e/tools/cnidriver, so either binary serves the same tests. CNI_PATH
// (colon separated) comes from the environment. On success, add prints the
// CNI result and gc/status print a short JSON summary on stdout; check and
// del print nothing. On failure the CNI error object {"code","msg","details"}
// goes to stdout and the exit status is 1; bad usage exits 2. With --timing,
// the last stderr line is {"cnidriverTiming":{"verb":...,"ns":...}}: the time
// spent inside the libcni call alone, without this process's own start-up.
//
// gc and status are libcni's GCNetworkList and GetStatusNetworkList; the
// driver only reports what they did.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// exitCNIError is the status for a failed CNI operation; exitUsage for a bad command line.
const (
	exitCNIError = 1
	exitUsage    = 2
)

// attachment names one container interface, as in cni.dev/valid-attachments.
type attachment = types.GCAttachment

type options struct {
	verb        string
	conflist    string
	containerID string
	netns       string
	ifname      string
	args        [][2]string
	capArgs     map[string]interface{}
	valid       []attachment
	cacheDir    string
	timing      bool
	timeout     time.Duration
	cniPath     []string
}

// usageError is a command-line mistake: reported on stderr, exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func main() {
	opts, err := parseOptions(os.Args[1:], os.Getenv("CNI_PATH"), os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cnidriver: %v\n", err)
		fmt.Fprintln(os.Stderr, "usage: cnidriver <add|check|del|gc|status> --conflist FILE [--container-id ID] [--netns PATH] [--ifname eth0] [--args 'K=V;K=V'] [--capability-args JSON] [--valid 'id/eth0,...'] [--cache-dir DIR] [--timeout 2m] [--timing]")
		os.Exit(exitUsage)
	}
	os.Exit(run(opts, os.Stdout, os.Stderr))
}

func parseOptions(argv []string, cniPath string, stderr io.Writer) (*options, error) {
	if len(argv) == 0 {
		return nil, &usageError{"missing verb"}
	}
	opts := &options{verb: argv[0]}
	switch opts.verb {
	case "add", "check", "del", "gc", "status":
	default:
		return nil, &usageError{fmt.Sprintf("unknown verb %q", opts.verb)}
	}

	fs := flag.NewFlagSet("cnidriver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.conflist, "conflist", "", "network configuration list (.conflist) or single config (.conf) file")
	fs.StringVar(&opts.containerID, "container-id", "", "CNI_CONTAINERID")
	fs.StringVar(&opts.netns, "netns", "", "CNI_NETNS: path of the network namespace")
	fs.StringVar(&opts.ifname, "ifname", "eth0", "CNI_IFNAME")
	argsStr := fs.String("args", "", "CNI_ARGS as 'K=V;K=V'")
	capStr := fs.String("capability-args", "", "JSON object of capability arguments (runtimeConfig), e.g. portMappings")
	validStr := fs.String("valid", "", "gc: attachments to keep, 'containerID/ifname,...'")
	fs.StringVar(&opts.cacheDir, "cache-dir", "", "libcni cache directory (default: libcni's, /var/lib/cni)")
	fs.BoolVar(&opts.timing, "timing", false, "print the time spent in libcni as a JSON line on stderr")
	fs.DurationVar(&opts.timeout, "timeout", 2*time.Minute, "upper bound for the whole operation")
	if err := fs.Parse(argv[1:]); err != nil {
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if opts.conflist == "" {
		return nil, &usageError{"--conflist is required"}
	}
	if opts.timeout <= 0 {
		return nil, &usageError{"--timeout must be positive"}
	}

	for _, dir := range strings.Split(cniPath, string(os.PathListSeparator)) {
		if dir != "" {
			opts.cniPath = append(opts.cniPath, dir)
		}
	}
	if len(opts.cniPath) == 0 {
		return nil, &usageError{"CNI_PATH is not set"}
	}

	switch opts.verb {
	case "add", "check", "del":
		if opts.containerID == "" {
			return nil, &usageError{fmt.Sprintf("%s needs --container-id", opts.verb)}
		}
	}
	if opts.verb != "gc" && *validStr != "" {
		return nil, &usageError{"--valid only applies to gc"}
	}

	var err error
	if opts.args, err = parseCNIArgs(*argsStr); err != nil {
		return nil, &usageError{err.Error()}
	}
	if *capStr != "" {
		if err := json.Unmarshal([]byte(*capStr), &opts.capArgs); err != nil {
			return nil, &usageError{fmt.Sprintf("parse --capability-args: %v", err)}
		}
	}
	if opts.valid, err = parseAttachments(*validStr); err != nil {
		return nil, &usageError{err.Error()}
	}
	return opts, nil
}

// parseCNIArgs splits 'K=V;K=V' into the pairs libcni joins back into CNI_ARGS.
func parseCNIArgs(s string) ([][2]string, error) {
	var out [][2]string
	for _, kv := range strings.Split(s, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("parse --args: %q is not K=V", kv)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// parseAttachments reads 'id1/eth0,id2/eth0'.
func parseAttachments(s string) ([]attachment, error) {
	out := []attachment{}
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			continue
		}
		id, ifname, ok := strings.Cut(item, "/")
		if !ok || id == "" || ifname == "" {
			return nil, fmt.Errorf("parse --valid: %q is not containerID/ifname", item)
		}
		out = append(out, attachment{ContainerID: id, IfName: ifname})
	}
	return out, nil
}

// loadList reads a .conflist, or wraps a single-plugin .conf into a list the
// way runtimes still accept it.
func loadList(path string) (*libcni.NetworkConfigList, error) {
	if strings.HasSuffix(path, ".conf") {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		conf, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return nil, err
		}
		return libcni.ConfListFromConf(conf)
	}
	return libcni.NetworkConfFromFile(path)
}

func run(opts *options, stdout, stderr io.Writer) int {
	list, err := loadList(opts.conflist)
	if err != nil {
		return fail(stdout, stderr, "", fmt.Errorf("load %s: %w", opts.conflist, err))
	}

	// The exec is built exactly as libcni builds its default one, except
	// that plugin stderr is forwarded to ours explicitly.
	exec := &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: stderr},
		PluginDecoder: version.PluginDecoder{},
	}
	cni := libcni.NewCNIConfigWithCacheDir(opts.cniPath, opts.cacheDir, exec)
	rt := &libcni.RuntimeConf{
		ContainerID:    opts.containerID,
		NetNS:          opts.netns,
		IfName:         opts.ifname,
		Args:           opts.args,
		CapabilityArgs: opts.capArgs,
		CacheDir:       opts.cacheDir,
	}

	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()

	var out interface{}
	var before []attachment
	if opts.verb == "gc" {
		// Read outside the timed call: only to report what GC removed.
		if before, err = cachedAttachments(cni, list.Name); err != nil {
			return fail(stdout, stderr, list.CNIVersion, err)
		}
	}
	start := time.Now()
	switch opts.verb {
	case "add":
		var res types.Result
		res, err = cni.AddNetworkList(ctx, list, rt)
		if err == nil {
			out = res
		}
	case "check":
		err = cni.CheckNetworkList(ctx, list, rt)
	case "del":
		err = cni.DelNetworkList(ctx, list, rt)
	case "gc":
		err = cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: opts.valid})
	case "status":
		err = cni.GetStatusNetworkList(ctx, list)
	}
	elapsed := time.Since(start)

	if opts.timing {
		// Printed before the outcome so a failed call is timed too.
		defer func() {
			line, _ := json.Marshal(map[string]interface{}{
				"cnidriverTiming": map[string]interface{}{"verb": opts.verb, "ns": elapsed.Nanoseconds(), "ok": err == nil},
			})
			fmt.Fprintln(stderr, string(line))
		}()
	}
	if err != nil {
		return fail(stdout, stderr, list.CNIVersion, err)
	}
	switch opts.verb {
	case "gc":
		out, err = gcSummary(cni, list, before)
		if err != nil {
			return fail(stdout, stderr, list.CNIVersion, err)
		}
	case "status":
		// libcni asks the plugins only from cniVersion 1.1.0 on; before that
		// there is no STATUS and a runtime treats the network as ready.
		out = statusResult{PluginsAsked: atLeast(list.CNIVersion, "1.1.0")}
	}
	if out != nil {
		if res, ok := out.(types.Result); ok {
			// Print in the list's version, as a runtime would hand it on.
			if conv, cerr := res.GetAsVersion(list.CNIVersion); cerr == nil {
				out = conv
			}
		}
		data, merr := json.MarshalIndent(out, "", "  ")
		if merr != nil {
			return fail(stdout, stderr, list.CNIVersion, fmt.Errorf("encode result: %w", merr))
		}
		fmt.Fprintln(stdout, string(data))
	}
	return 0
}

// fail prints err as a CNI error object. The plugin's own code survives
// libcni's wrapping; anything without one (config parse, plugin not found,
// timeout) reports 999, the spec's "internal" code.
func fail(stdout, stderr io.Writer, cniVersion string, err error) int {
	obj := map[string]interface{}{"code": types.ErrInternal, "msg": err.Error()}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		obj["code"] = cniErr.Code
		obj["msg"] = cniErr.Msg
		if cniErr.Details != "" {
			obj["details"] = cniErr.Details
		}
	}
	if cniVersion != "" {
		obj["cniVersion"] = cniVersion
	}
	data, _ := json.MarshalIndent(obj, "", "  ")
	fmt.Fprintln(stdout, string(data))
	// The wrapped chain says which plugin failed; keep it for humans.
	fmt.Fprintf(stderr, "cnidriver %v\n", err)
	return exitCNIError
}

func atLeast(v, min string) bool {
	ok, err := version.GreaterThanOrEqualTo(v, min)
	return err == nil && ok
}

// cachedAttachments lists libcni's cached attachments of one network.
func cachedAttachments(cni *libcni.CNIConfig, network string) ([]attachment, error) {
	all, err := cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("list cached attachments: %w", err)
	}
	out := []attachment{}
	for _, a := range all {
		if a.Network == network {
			out = append(out, attachment{ContainerID: a.ContainerID, IfName: a.IfName})
		}
	}
	return out, nil
}

// gcResult is gc's summary on stdout.
type gcResult struct {
	StaleDeleted []attachment `json:"staleDeleted"`
	PluginsGC    bool         `json:"pluginsGC"`
}

// gcSummary reports the attachments GCNetworkList removed from libcni's
// cache (cached before, gone after) and whether it sent GC to the plugins,
// which libcni does from cniVersion 1.1.0 on.
func gcSummary(cni *libcni.CNIConfig, list *libcni.NetworkConfigList, before []attachment) (gcResult, error) {
	after, err := cachedAttachments(cni, list.Name)
	if err != nil {
		return gcResult{}, err
	}
	left := make(map[attachment]bool, len(after))
	for _, a := range after {
		left[a] = true
	}
	res := gcResult{StaleDeleted: []attachment{}, PluginsGC: !list.DisableGC && atLeast(list.CNIVersion, "1.1.0")}
	for _, a := range before {
		if !left[a] {
			res.StaleDeleted = append(res.StaleDeleted, a)
		}
	}
	return res, nil
}

// statusResult is status's summary on stdout.
type statusResult struct {
	PluginsAsked bool `json:"pluginsAsked"`
}
