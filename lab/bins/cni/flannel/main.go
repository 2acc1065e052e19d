// Command flannel is the lab's CNI plugin for Flannel's network: what Flannel's own CNI plugin
// (github.com/flannel-io/cni-plugin, not served by the Go module proxy) does, in our own code. It
// reads the node's subnet from the file flanneld writes (/run/flannel/subnet.env), turns its
// "delegate" section into a bridge configuration with host-local IPAM for that subnet, and hands
// ADD to the real bridge plugin. The configuration it delegated is kept per container, so DEL
// undoes exactly what ADD did even after the subnet file changed or is gone.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// config is this plugin's part of the network configuration (kube-flannel.yml's cni-conf.json).
type config struct {
	types.NetConf
	IPAM          map[string]any `json:"ipam,omitempty"`
	SubnetFile    string         `json:"subnetFile"`
	DataDir       string         `json:"dataDir"`
	Delegate      map[string]any `json:"delegate"`
	RuntimeConfig map[string]any `json:"runtimeConfig,omitempty"`
}

// subnet is what flanneld wrote for this node.
type subnet struct {
	network, subnet string
	mtu             int
	ipMasq          bool
}

func parseConfig(stdin []byte) (*config, error) {
	c := &config{SubnetFile: "/run/flannel/subnet.env", DataDir: "/var/lib/cni/flannel"}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, fmt.Errorf("cannot parse the network configuration: %w", err)
	}
	if c.Delegate == nil {
		c.Delegate = map[string]any{}
	}
	if t, ok := c.Delegate["type"]; ok {
		if _, isString := t.(string); !isString {
			return nil, errors.New(`"delegate.type" must be a string`)
		}
	}
	for _, reserved := range []string{"name", "ipam"} {
		if _, ok := c.Delegate[reserved]; ok {
			return nil, fmt.Errorf(`"delegate.%s" is set by this plugin and must not be given`, reserved)
		}
	}
	return c, nil
}

func readSubnet(file string) (*subnet, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("flanneld has not written this node's subnet yet: %w", err)
	}
	defer f.Close()
	s := &subnet{mtu: -1}
	seenMasq := false
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		key, value, _ := strings.Cut(strings.TrimSpace(lines.Text()), "=")
		switch key {
		// flanneld writes the node's gateway address (10.244.1.1/24); IPAM wants the network.
		case "FLANNEL_NETWORK", "FLANNEL_SUBNET":
			_, network, err := net.ParseCIDR(value)
			if err != nil {
				return nil, fmt.Errorf("%s: %s=%q: %w", file, key, value, err)
			}
			if key == "FLANNEL_NETWORK" {
				s.network = network.String()
			} else {
				s.subnet = network.String()
			}
		case "FLANNEL_MTU":
			if s.mtu, err = strconv.Atoi(value); err != nil {
				return nil, fmt.Errorf("%s: FLANNEL_MTU=%q: %w", file, value, err)
			}
		case "FLANNEL_IPMASQ":
			s.ipMasq, seenMasq = value == "true", true
		}
	}
	if err := lines.Err(); err != nil {
		return nil, err
	}
	if s.network == "" || s.subnet == "" || s.mtu < 0 || !seenMasq {
		return nil, fmt.Errorf("%s lacks one of FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ", file)
	}
	return s, nil
}

// delegateConfig is the bridge configuration for this node's subnet.
func delegateConfig(c *config, s *subnet) map[string]any {
	d := map[string]any{}
	for k, v := range c.Delegate {
		d[k] = v
	}
	d["name"] = c.Name
	if c.CNIVersion != "" {
		d["cniVersion"] = c.CNIVersion
	}
	setDefault(d, "type", "bridge")
	// Masquerade in the bridge only when flanneld does not.
	setDefault(d, "ipMasq", !s.ipMasq)
	setDefault(d, "mtu", s.mtu)
	if d["type"] == "bridge" {
		setDefault(d, "isGateway", true)
	}
	ipam := map[string]any{}
	for k, v := range c.IPAM {
		ipam[k] = v
	}
	setDefault(ipam, "type", "host-local")
	ipam["ranges"] = [][]map[string]string{{{"subnet": s.subnet}}}
	routes, _ := ipam["routes"].([]any)
	ipam["routes"] = append(routes, map[string]string{"dst": s.network})
	d["ipam"] = ipam
	if c.RuntimeConfig != nil {
		d["runtimeConfig"] = c.RuntimeConfig
	}
	return d
}

func setDefault(m map[string]any, key string, value any) {
	if _, ok := m[key]; !ok {
		m[key] = value
	}
}

func add(args *skel.CmdArgs) error {
	c, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	s, err := readSubnet(c.SubnetFile)
	if err != nil {
		return err
	}
	conf, err := json.Marshal(delegateConfig(c, s))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return err
	}
	// Kept before the delegate runs: a DEL after a failed ADD must still reach the bridge plugin.
	if err := os.WriteFile(filepath.Join(c.DataDir, args.ContainerID), conf, 0o600); err != nil {
		return err
	}
	result, err := invoke.DelegateAdd(context.TODO(), typeOf(conf), conf, nil)
	if err != nil {
		return fmt.Errorf("the %s plugin failed: %w", typeOf(conf), err)
	}
	return result.Print()
}

func del(args *skel.CmdArgs) error {
	c, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	saved := filepath.Join(c.DataDir, args.ContainerID)
	conf, err := os.ReadFile(saved)
	if errors.Is(err, os.ErrNotExist) {
		// Never added, or deleted already: DEL must succeed (CNI spec).
		return nil
	}
	if err != nil {
		return err
	}
	if err := invoke.DelegateDel(context.TODO(), typeOf(conf), conf, nil); err != nil {
		return fmt.Errorf("the %s plugin failed: %w", typeOf(conf), err)
	}
	return os.Remove(saved)
}

func check(args *skel.CmdArgs) error {
	c, err := parseConfig(args.StdinData)
	if err != nil {
		return err
	}
	conf, err := os.ReadFile(filepath.Join(c.DataDir, args.ContainerID))
	if err != nil {
		return fmt.Errorf("no record of container %s: %w", args.ContainerID, err)
	}
	return invoke.DelegateCheck(context.TODO(), typeOf(conf), conf, nil)
}

func typeOf(conf []byte) string {
	var t struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(conf, &t)
	return t.Type
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: del, Check: check}, version.All, "flannel (kubectl-cilium-migrate lab)")
}
