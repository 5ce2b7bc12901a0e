// Command kubefields prints what the protobuf descriptors of the built-in kinds do not say
// about their JSON form, for the sim's protobuf decoding (src/sim/kubernetes-fields.json):
// per protobuf message, the fields Go's JSON encoding writes even when zero (pointers and
// fields without omitempty), the fields it inlines, and the fields named differently.
package main

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"

	"k8s.io/client-go/kubernetes/scheme"
)

type rules struct {
	Zero   []string          `json:"zero,omitempty"`
	Inline []string          `json:"inline,omitempty"`
	Rename map[string]string `json:"rename,omitempty"`
}

func scalar(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func tagValue(tag, key string) (string, bool) {
	for _, part := range strings.Split(tag, ",") {
		if v, ok := strings.CutPrefix(part, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

func main() {
	out := map[string]rules{}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || t.PkgPath() == "" {
			return
		}
		seen[t] = true
		var r rules
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			protoTag := f.Tag.Get("protobuf")
			walk(f.Type)
			name, ok := tagValue(protoTag, "name")
			if !ok {
				continue
			}
			jsonTag := f.Tag.Get("json")
			jsonName, opts, _ := strings.Cut(jsonTag, ",")
			if strings.Contains(","+opts+",", ",inline,") || (f.Anonymous && jsonName == "") {
				r.Inline = append(r.Inline, name)
				continue
			}
			if jsonName != "" && jsonName != name {
				if r.Rename == nil {
					r.Rename = map[string]string{}
				}
				r.Rename[name] = jsonName
			}
			omitempty := strings.Contains(","+opts+",", ",omitempty,")
			ft := f.Type
			pointer := ft.Kind() == reflect.Pointer
			if pointer {
				ft = ft.Elem()
			}
			if scalar(ft.Kind()) && (pointer || !omitempty) {
				r.Zero = append(r.Zero, name)
			}
		}
		if len(r.Zero)+len(r.Inline)+len(r.Rename) > 0 {
			sort.Strings(r.Zero)
			sort.Strings(r.Inline)
			out[strings.ReplaceAll(t.PkgPath(), "/", ".")+"."+t.Name()] = r
		}
	}
	for _, t := range scheme.Scheme.AllKnownTypes() {
		walk(t)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
