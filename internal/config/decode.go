package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads a YAML document into a node tree. A syntax error is one problem with its line.
func Parse(data []byte) (*yaml.Node, Problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{{Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if doc.Kind == 0 { // empty file
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map", Line: 1}}}
	}
	return &doc, nil
}

var envRef = regexp.MustCompile(`\$\$\{|\$\{([^}]*)\}`)

// Expand replaces variable references in every scalar value below n, as docker-compose does:
// ${NAME} is the variable's value from lookup, and a missing variable is a problem, never an
// empty string; ${NAME:-default} is default when NAME is unset or empty; ${NAME:?message}
// is a problem saying message when NAME is unset or empty. "$${" stands for a literal "${".
// Keys are not expanded. Problems found here are root causes: Problems.Err leaves out
// other problems on the same line, which would only restate them ("token is required").
func Expand(n *yaml.Node, lookup func(string) (string, bool)) Problems {
	var ps Problems
	var walk func(n *yaml.Node, isKey bool)
	walk = func(n *yaml.Node, isKey bool) {
		switch n.Kind {
		case yaml.ScalarNode:
			if isKey || !strings.Contains(n.Value, "${") {
				return
			}
			n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
				if m == "$${" {
					return "${"
				}
				v, err := expandRef(m[2:len(m)-1], lookup)
				if err != "" {
					ps = append(ps, Problem{Line: n.Line, Msg: err, root: true})
					return ""
				}
				return v
			})
			// An expanded value is a string, whatever it looks like ("123", "true").
			if n.Tag != "!!str" && n.Style == 0 {
				n.Tag = "!!str"
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i], true)
				walk(n.Content[i+1], false)
			}
		default:
			for _, c := range n.Content {
				walk(c, false)
			}
		}
	}
	walk(n, false)
	return ps
}

// expandRef resolves the inside of one ${...}: its value, or a problem's message.
func expandRef(ref string, lookup func(string) (string, bool)) (string, string) {
	name, op, arg := ref, "", ""
	if i := strings.IndexAny(ref, ":"); i >= 0 {
		name, op, arg = ref[:i], ref[i:min(i+2, len(ref))], ref[min(i+2, len(ref)):]
	}
	if !validEnvName(name) || !(op == "" || op == ":-" || op == ":?") {
		return "", fmt.Sprintf("%q is not a valid variable reference (use ${NAME}, ${NAME:-default} or ${NAME:?message}; NAME of letters, digits and _)", "${"+ref+"}")
	}
	v, ok := lookup(name)
	switch {
	case op == "" && !ok:
		return "", fmt.Sprintf("environment variable %s is not set", name)
	case op == ":-" && v == "":
		return arg, ""
	case op == ":?" && v == "":
		if arg == "" {
			arg = "is not set"
		}
		return "", fmt.Sprintf("environment variable %s: %s", name, arg)
	}
	return v, ""
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	nodeType        = reflect.TypeFor[yaml.Node]()
)

// Decode decodes n into v (a pointer) strictly: a key that v has no field for is a problem
// with its line and the keys that are known, and so is a value of the wrong type. Then every
// Secret or Secrets field with a twin "<key>_file" field that is set is read from that file.
// path prefixes problem paths ("sinks[1]").
func Decode(n *yaml.Node, v any, path string) Problems {
	var ps Problems
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	checkKnown(n, reflect.TypeOf(v), path, &ps)
	if err := n.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				ps.Add(0, path, "%s", strings.TrimPrefix(e, "yaml: "))
			}
		} else {
			ps.Add(n.Line, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return ps
	}
	readSecretFiles(n, reflect.ValueOf(v), path, &ps)
	return ps
}

func checkKnown(n *yaml.Node, t reflect.Type, path string, ps *Problems) {
	if n == nil {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return // decoded by its own rules, or kept raw for a later strict decode
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // Decode reports the type mismatch
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				ps.Add(k.Line, Path(path, k.Value), "unknown key (known keys: %s)", strings.Join(sortedKeys(fields), ", "))
				continue
			}
			checkKnown(val, f.Type, Path(path, k.Value), ps)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for i, c := range n.Content {
				checkKnown(c, t.Elem(), Path(path, i), ps)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				checkKnown(n.Content[i+1], t.Elem(), Path(path, n.Content[i].Value), ps)
			}
		}
	}
}

// yamlFields maps YAML keys to struct fields the way yaml.v3 does (lowercased field name by
// default, ",inline" structs flattened, "-" skipped).
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func sortedKeys(m map[string]reflect.StructField) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	secretType  = reflect.TypeFor[Secret]()
	secretsType = reflect.TypeFor[Secrets]()
)

// readSecretFiles fills secret fields from their "_file" twins, recursively.
func readSecretFiles(n *yaml.Node, v reflect.Value, path string, ps *Problems) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		byKey := map[string]reflect.Value{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			byKey[name] = v.Field(i)
		}
		for key, fv := range byKey {
			if fv.Type() != secretType && fv.Type() != secretsType {
				readSecretFiles(child(n, key), fv, Path(path, key), ps)
				continue
			}
			twin, ok := byKey[key+"_file"]
			if !ok || twin.Kind() != reflect.String || twin.String() == "" {
				continue
			}
			line := FieldLine(n, key+"_file")
			if !fv.IsZero() {
				ps.Add(line, Path(path, key+"_file"), "set either %s or %s_file, not both", key, key)
				continue
			}
			data, err := os.ReadFile(twin.String())
			if err != nil {
				// The path, never the contents; os errors name the path, so unwrap and restate.
				ps.Add(line, Path(path, key+"_file"), "cannot read secret file %s: %v", twin.String(), errors.Unwrap(err))
				continue
			}
			if fv.Type() == secretType {
				fv.SetString(strings.TrimRight(string(data), "\r\n"))
				continue
			}
			var list Secrets
			for _, l := range strings.Split(string(data), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					list = append(list, Secret(l))
				}
			}
			fv.Set(reflect.ValueOf(list))
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			readSecretFiles(child(n, strconv.Itoa(i)), v.Index(i), Path(path, i), ps)
		}
	}
}
