// Command cnidriver drives a CNI network configuration list through libcni,
// the library container runtimes link, so podnet's tests and benchmarks
// exercise plugins exactly the way a runtime does.
//
// Usage:
//
//	cnidriver <add|check|del|gc|status> --conflist FILE [flags]
//
// CNI_PATH (colon separated) comes from the environment. On success, add
// prints the CNI result and gc/status print a short JSON summary on stdout;
// check and del print nothing. On failure the CNI error object
// {"code","msg","details"} goes to stdout and the exit status is 1; bad
// usage exits 2. With --timing, the last stderr line is
// {"cnidriverTiming":{"verb":...,"ns":...}}: the time spent inside the
// libcni call alone, without this process's own start-up.
//
// The libcni shipped by Debian 12 (1.1.2) implements CNI spec 1.0.0 and has
// no GC or STATUS. Those two verbs follow the CNI 1.1.0 spec here: stale
// cached attachments are deleted through DelNetworkList, then every plugin
// of a list whose cniVersion is at least 1.1.0 is exec'd with the same
// environment and stdin construction libcni uses for the other verbs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
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
type attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

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

func loadList(path string) (*libcni.NetworkConfigList, error) {
	if strings.HasSuffix(path, ".conf") {
		conf, err := libcni.ConfFromFile(path)
		if err != nil {
			return nil, err
		}
		return libcni.ConfListFromConf(conf)
	}
	return libcni.ConfListFromFile(path)
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
	}

	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()

	var out interface{}
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
		out, err = gcNetworkList(ctx, cni, exec, list, opts)
	case "status":
		out, err = statusNetworkList(ctx, cni, exec, list)
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

// cachedAttachment is the part of libcni's result cache entry GC needs.
type cachedAttachment struct {
	Kind           string                 `json:"kind"`
	ContainerID    string                 `json:"containerId"`
	IfName         string                 `json:"ifName"`
	NetworkName    string                 `json:"networkName"`
	NetNS          string                 `json:"netns"`
	CniArgs        [][2]string            `json:"cniArgs"`
	CapabilityArgs map[string]interface{} `json:"capabilityArgs"`
}

func cacheRoot(cacheDir string) string {
	if cacheDir != "" {
		return cacheDir
	}
	return libcni.CacheDir
}

// cachedAttachments lists libcni's cache entries for one network.
func cachedAttachments(cacheDir, network string) ([]cachedAttachment, error) {
	dir := filepath.Join(cacheRoot(cacheDir), "results")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cache %s: %w", dir, err)
	}
	var out []cachedAttachment
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), network+"-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			// Deleted by a concurrent DEL: nothing left to collect.
			continue
		}
		var c cachedAttachment
		if json.Unmarshal(data, &c) != nil || c.Kind != libcni.CNICacheV1 || c.NetworkName != network {
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerID != out[j].ContainerID {
			return out[i].ContainerID < out[j].ContainerID
		}
		return out[i].IfName < out[j].IfName
	})
	return out, nil
}

func atLeast(v, min string) bool {
	ok, err := version.GreaterThanOrEqualTo(v, min)
	return err == nil && ok
}

// gcResult is gc's summary on stdout.
type gcResult struct {
	StaleDeleted []attachment `json:"staleDeleted"`
	PluginsGC    bool         `json:"pluginsGC"`
}

// gcNetworkList follows CNI 1.1.0 GC: DEL every cached attachment of this
// network that is not in the valid set, then send GC to each plugin.
func gcNetworkList(ctx context.Context, cni *libcni.CNIConfig, exec invoke.Exec, list *libcni.NetworkConfigList, opts *options) (interface{}, error) {
	valid := make(map[attachment]bool, len(opts.valid))
	for _, a := range opts.valid {
		valid[a] = true
	}
	res := gcResult{StaleDeleted: []attachment{}}
	var errs []string

	cached, err := cachedAttachments(opts.cacheDir, list.Name)
	if err != nil {
		return nil, err
	}
	for _, c := range cached {
		a := attachment{ContainerID: c.ContainerID, IfName: c.IfName}
		if valid[a] {
			continue
		}
		// libcni 1.1.2 does not record the netns in its cache; an empty
		// CNI_NETNS is what a runtime has for a sandbox already gone.
		rt := &libcni.RuntimeConf{ContainerID: c.ContainerID, IfName: c.IfName, NetNS: c.NetNS, Args: c.CniArgs, CapabilityArgs: c.CapabilityArgs}
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			errs = append(errs, fmt.Sprintf("delete stale attachment %s/%s: %v", a.ContainerID, a.IfName, err))
			continue
		}
		res.StaleDeleted = append(res.StaleDeleted, a)
	}

	if atLeast(list.CNIVersion, "1.1.0") {
		res.PluginsGC = true
		inject := map[string]interface{}{
			"name":                      list.Name,
			"cniVersion":                list.CNIVersion,
			"cni.dev/valid-attachments": opts.valid,
		}
		for _, plugin := range list.Plugins {
			if err := execWithoutResult(ctx, exec, cni.Path, plugin, inject, "GC"); err != nil {
				errs = append(errs, fmt.Sprintf("plugin type=%q failed (gc): %v", plugin.Network.Type, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return res, nil
}

// statusResult is status's summary on stdout.
type statusResult struct {
	PluginsAsked bool `json:"pluginsAsked"`
}

// statusNetworkList follows CNI 1.1.0 STATUS: ask each plugin in order and
// stop at the first error, which keeps the plugin's error code intact.
func statusNetworkList(ctx context.Context, cni *libcni.CNIConfig, exec invoke.Exec, list *libcni.NetworkConfigList) (interface{}, error) {
	if !atLeast(list.CNIVersion, "1.1.0") {
		// Before 1.1.0 there is no STATUS: a runtime treats the network as ready.
		return statusResult{PluginsAsked: false}, nil
	}
	inject := map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion}
	for _, plugin := range list.Plugins {
		if err := execWithoutResult(ctx, exec, cni.Path, plugin, inject, "STATUS"); err != nil {
			return nil, fmt.Errorf("plugin type=%q failed (status): %w", plugin.Network.Type, err)
		}
	}
	return statusResult{PluginsAsked: true}, nil
}

// execWithoutResult runs one plugin for a verb without a container: the env
// carries CNI_COMMAND and CNI_PATH, the container fields stay empty.
func execWithoutResult(ctx context.Context, exec invoke.Exec, path []string, plugin *libcni.NetworkConfig, inject map[string]interface{}, command string) error {
	pluginPath, err := exec.FindInPath(plugin.Network.Type, path)
	if err != nil {
		return err
	}
	conf, err := libcni.InjectConf(plugin, inject)
	if err != nil {
		return fmt.Errorf("build %s config: %w", strings.ToLower(command), err)
	}
	args := &invoke.Args{Command: command, Path: strings.Join(path, string(os.PathListSeparator))}
	return invoke.ExecPluginWithoutResult(ctx, pluginPath, conf.Bytes, args, exec)
}
