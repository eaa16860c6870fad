package config

import (
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ResolveFiles makes every relative "*_file" value below n relative to dir, the folder of
// the configuration file, as Prometheus does: a configuration means the same whatever the
// current directory of the process that reads it. dir "" leaves the values as they are.
func ResolveFiles(n *yaml.Node, dir string) {
	if n == nil || dir == "" {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if strings.HasSuffix(k.Value, "_file") && v.Kind == yaml.ScalarNode && v.Value != "" && !filepath.IsAbs(v.Value) {
				v.Value = filepath.Join(dir, v.Value)
				continue
			}
			ResolveFiles(v, dir)
		}
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			ResolveFiles(c, dir)
		}
	}
}
