package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// kicEntries reads a file of Kubernetes manifests, as the Kong Ingress
// Controller reads them: the config of every KongPlugin and
// KongClusterPlugin (configuration.konghq.com) whose plugin is
// keycloak-jwt is an entry. ok is false when the file holds no Kubernetes
// object (it is then a Kong declarative file); other kinds are skipped.
func kicEntries(f File) (entries []pluginEntry, ok bool) {
	if !bytes.Contains(f.Data, []byte("apiVersion")) {
		return nil, false
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(f.Data))
	d := &parsedDoc{name: f.Name, lines: map[string]int{}}
	for i := 0; ; i++ {
		var n yamlv3.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, false // not a YAML stream: let the declarative reader say why
		}
		var obj struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
			Plugin      string         `yaml:"plugin"`
			Disabled    bool           `yaml:"disabled"`
			ConsumerRef string         `yaml:"consumerRef"`
			Config      map[string]any `yaml:"config"`
			ConfigFrom  any            `yaml:"configFrom"`
		}
		if n.Decode(&obj) != nil || obj.APIVersion == "" || obj.Kind == "" {
			continue
		}
		ok = true
		if !strings.HasPrefix(obj.APIVersion, "configuration.konghq.com/") ||
			(obj.Kind != "KongPlugin" && obj.Kind != "KongClusterPlugin") || obj.Plugin != Name || obj.Disabled {
			continue
		}
		path := "doc" + strconv.Itoa(i)
		if len(n.Content) == 1 {
			d.lines[path] = n.Content[0].Line
			indexLines(n.Content[0], path, d.lines)
		}
		name := obj.Metadata.Name
		if obj.Metadata.Namespace != "" {
			name = obj.Metadata.Namespace + "/" + name
		}
		e := pluginEntry{where: obj.Kind + " " + name, doc: d, path: path, consumer: obj.ConsumerRef != ""}
		if obj.ConfigFrom != nil {
			e.err = errors.New("configFrom: the config is in a Secret, which this check cannot read; " +
				"validate the Secret's JSON as a plugin config (plugin.ParseConfig)")
		}
		e.config, _ = json.Marshal(obj.Config)
		if obj.Config == nil {
			e.config = []byte("{}")
		}
		entries = append(entries, e)
	}
	return entries, ok
}
