package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEveryKeyHasAReloadClass: a key added to the file format fails here
// until reloadRules says what a SIGHUP does with it.
func TestEveryKeyHasAReloadClass(t *testing.T) {
	keys := schemaKeys()
	isTable := func(k string) bool {
		return slices.ContainsFunc(keys, func(o string) bool { return strings.HasPrefix(o, k+".") })
	}
	for _, k := range keys {
		if _, ok := reloadRules()[k]; ok {
			continue
		}
		if _, ok := ReloadOf(k); ok {
			continue // inside a table classified whole
		}
		if !isTable(k) {
			t.Errorf("key %s has no reload class: add it to reloadRules (config/reload.go)", k)
		}
	}
	for k := range reloadRules() {
		if !slices.Contains(keys, k) {
			t.Errorf("reloadRules names %s, which the file cannot contain", k)
		}
	}
	for _, tc := range []struct {
		key  string
		want Reload
	}{
		{"state", NeedsRestart},
		{"http.listen", NeedsRestart},
		{"http.tls_ca_file", CLIOnly},
		{"fetch.allow_private", Applies},
		{"push.allow_private", Applies},
		{"push.timeout", Applies},
		{"feed.tile.title", Applies},
		{"defaults.schedule", Applies},
		{"push.webpush.icon", Applies},
		{"feed.webpush.icon", Applies},
	} {
		if got, ok := ReloadOf(tc.key); !ok || got != tc.want {
			t.Errorf("ReloadOf(%s) = %v, %v; want %v", tc.key, got, ok, tc.want)
		}
	}
	if _, ok := ReloadOf("push.nosuch"); ok {
		t.Error("ReloadOf classifies a key the file cannot contain")
	}
}

// changed returns a value of v's type that differs from v.
func changed(t *testing.T, v reflect.Value) reflect.Value {
	t.Helper()
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.String:
		out.SetString(v.String() + "-changed")
	case reflect.Bool:
		out.SetBool(!v.Bool())
	case reflect.Int, reflect.Int64:
		out.SetInt(v.Int() + int64(time.Second))
	case reflect.Slice:
		out = reflect.MakeSlice(v.Type(), v.Len()+1, v.Len()+1)
		reflect.Copy(out, v)
		if v.Type().Elem().Kind() == reflect.String {
			out.Index(v.Len()).SetString("changed.example.org")
		}
	case reflect.Pointer:
		// An optional table ([push.wns]): a new one, its fields changed.
		elem := reflect.New(v.Type().Elem())
		if !v.IsNil() {
			elem.Elem().Set(v.Elem())
		}
		out.Set(elem)
		out.Elem().Set(changed(t, elem.Elem()))
	case reflect.Struct:
		// [defaults]: change its first string field.
		out.Set(v)
		for i := range out.NumField() {
			if f := out.Field(i); f.Kind() == reflect.String {
				f.SetString(f.String() + "-changed")
				return out
			}
		}
		t.Fatalf("no string field in %s", v.Type())
	default:
		t.Fatalf("cannot change a %s", v.Kind())
	}
	return out
}

// ApplyReload, key by key: a changed NeedsRestart key is named and keeps
// its running value; a changed Applies or CLIOnly key takes the new one.
func TestApplyReloadKeepsRestartKeys(t *testing.T) {
	running := Default()
	running.Feeds = nil
	for key, r := range reloadRules() {
		t.Run(key, func(t *testing.T) {
			next := *running
			field := reflect.ValueOf(r.field(&next)).Elem()
			newValue := changed(t, field)
			field.Set(newValue)
			before := *running
			applied, restart := ApplyReload(running, &next)
			got := reflect.ValueOf(r.field(applied)).Elem().Interface()
			old := reflect.ValueOf(r.field(running)).Elem().Interface()
			if r.reload == NeedsRestart {
				if !slices.Equal(restart, []string{key}) || !reflect.DeepEqual(got, old) {
					t.Errorf("restart %v, value %v; want [%s] and the running value %v", restart, got, key, old)
				}
			} else if len(restart) != 0 || !reflect.DeepEqual(got, newValue.Interface()) {
				t.Errorf("restart %v, value %v; want none and the new value %v", restart, got, newValue)
			}
			if !reflect.DeepEqual(before, *running) {
				t.Error("ApplyReload changed the running config")
			}
			if !reflect.DeepEqual(reflect.ValueOf(r.field(&next)).Elem().Interface(), newValue.Interface()) {
				t.Error("ApplyReload changed the loaded config")
			}
		})
	}
	// Nothing changed: nothing to restart, the loaded config as it is.
	same := *running
	if applied, restart := ApplyReload(running, &same); len(restart) != 0 || !reflect.DeepEqual(*applied, same) {
		t.Errorf("an unchanged reload: restart %v", restart)
	}
}
