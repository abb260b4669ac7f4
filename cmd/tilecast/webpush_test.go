package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tilecast/tilecast/config"
	"github.com/tilecast/tilecast/emulator"
	"github.com/tilecast/tilecast/notify/webpush"
	"github.com/tilecast/tilecast/store"
)

// interopKeys are the throw-away keys of the shared interop folder: a
// browser's subscription and a VAPID key pair as npm web-push printed it.
type interopKeys struct {
	Subscription json.RawMessage `json:"subscription"`
	VAPID        struct {
		PublicKey  string `json:"publicKey"`
		PrivateKey string `json:"privateKey"`
	} `json:"vapid"`
}

func loadInteropKeys(t *testing.T) interopKeys {
	t.Helper()
	b, err := os.ReadFile("../../notify/webpush/testdata/interop/keys.json")
	if err != nil {
		t.Fatal(err)
	}
	var k interopKeys
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	return k
}

// A browser's subscription on FCM, as JSON.stringify gives it.
const fcmSubscription = `{"endpoint":"https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bH","expirationTime":null,` +
	`"keys":{"p256dh":"BFDZ5JD0Ib4oxvIt__F5k7nkTG-roGeX6Hun6agEvq9gisJi5J5rX7eTvgFaanEX2yX6XIZbT_u0PwMhzpPOst8",` +
	`"auth":"R7sQMSD-sO4heEqd2ME0mw"}}`

// vapid generate writes a new key (PEM, 0600) and prints its public half,
// never overwrites a key file; vapid public reads PEM and the base64url
// private key npm web-push prints, so an operator keeps the key the
// subscriptions were made with.
func TestVAPIDCommands(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "vapid.pem")
	code, pub, errs := runCLI(t, t.Context(), "vapid", "generate", "--out", out)
	if code != exitOK {
		t.Fatalf("generate: exit %d %s", code, errs)
	}
	pub = strings.TrimSpace(pub)
	if !regexp.MustCompile(`^B[A-Za-z0-9_-]{86}$`).MatchString(pub) {
		t.Errorf("generate printed %q, want a base64url uncompressed P-256 point", pub)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	pem, _ := os.ReadFile(out)
	if !strings.HasPrefix(string(pem), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file is not PKCS#8 PEM:\n%s", pem)
	}
	if code, again, _ := runCLI(t, t.Context(), "vapid", "public", "--key", out); code != exitOK || strings.TrimSpace(again) != pub {
		t.Errorf("vapid public of the new file: exit %d %q, want %q", code, again, pub)
	}
	if code, _, errs := runCLI(t, t.Context(), "vapid", "generate", "--out", out); code == exitOK || !strings.Contains(errs, out) {
		t.Errorf("generate over an existing file: exit %d %q", code, errs)
	}
	if after, _ := os.ReadFile(out); string(after) != string(pem) {
		t.Error("generate changed an existing key file")
	}

	keys := loadInteropKeys(t)
	raw := filepath.Join(dir, "web-push.key")
	os.WriteFile(raw, []byte(keys.VAPID.PrivateKey+"\n"), 0o600)
	if code, got, errs := runCLI(t, t.Context(), "vapid", "public", "--key", raw); code != exitOK || strings.TrimSpace(got) != keys.VAPID.PublicKey {
		t.Errorf("vapid public of web-push's key: exit %d %q %s, want %q", code, got, errs, keys.VAPID.PublicKey)
	}
	// And a config naming that file passes check.
	cfg := filepath.Join(dir, "tilecast.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("state = %q\n[http]\nlisten = \"\"\n[push.webpush]\nsubject = \"mailto:ops@tilecast.dev\"\n"+
		"vapid_private_key_file = %q\n", filepath.Join(dir, "state.db"), raw)), 0o600)
	if code, out, errs := runCLI(t, t.Context(), "check", "--config", cfg); code != exitOK ||
		!strings.Contains(out, "web push: subject mailto:ops@tilecast.dev, VAPID public key "+keys.VAPID.PublicKey+"\n") {
		t.Errorf("check with web-push's key: exit %d %s %s", code, out, errs)
	}
	os.WriteFile(raw, []byte("not a key\n"), 0o600)
	if code, _, errs := runCLI(t, t.Context(), "check", "--config", cfg); code != exitUsage || !strings.Contains(errs, "vapid_private_key_file") {
		t.Errorf("check with a bad key file: exit %d %q, want 2 naming vapid_private_key_file", code, errs)
	}
	for _, bad := range [][]string{{"vapid"}, {"vapid", "rotate"}, {"vapid", "generate"}, {"vapid", "public"}} {
		if code, _, _ := runCLI(t, t.Context(), bad...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}

// send --subscription --dry-run prints the request with its plaintext:
// TTL always (the kind's), Urgency per kind, the body described, the
// Authorization a placeholder without a key and a real VAPID token with
// one, a toast without tag, and with the configured icon.
func TestSendWebPushDryRun(t *testing.T) {
	dir := t.TempDir()
	subFile := filepath.Join(dir, "sub.json")
	os.WriteFile(subFile, []byte(fcmSubscription), 0o600)
	// TTL: the kind's default time to live, as WNS's send has it.
	for _, tc := range []struct {
		args  []string
		want  []string
		plain string
	}{
		{[]string{"--type", "toast", "--set", "text1=Hello & <welcome>", "--set", "text2=Ünïcode", "--set", "param=/item?id=42"},
			[]string{"Urgency: normal", "Ttl: 86400\r\n"}, `{"kind":"toast","title":"Hello & <welcome>","body":"Ünïcode","url":"/item?id=42"}`},
		{[]string{"--type", "tile", "--set", "title=News", "--set", "count=3", "--set", "backContent=Storm warning"},
			[]string{"Urgency: low", "Ttl: 259200\r\n"}, `{"kind":"tile","count":3,"title":"News","body":"Storm warning"}`},
		{[]string{"--type", "badge", "--set", "count=0"}, []string{"Urgency: low", "Ttl: 259200\r\n"}, `{"kind":"tile","count":0}`},
		{[]string{"--type", "raw", "--set", `payload={"sync":true}`}, []string{"Urgency: normal", "Ttl: 86400\r\n"}, `{"sync":true}`},
	} {
		for _, sub := range []string{fcmSubscription, "@" + subFile} {
			args := append([]string{"send", "--subscription", sub, "--dry-run"}, tc.args...)
			code, out, errs := runCLI(t, t.Context(), args...)
			if code != exitOK {
				t.Fatalf("%v: exit %d %s", tc.args, code, errs)
			}
			want := append([]string{"POST /fcm/send/dpH5lCsTSSM:APA91bH HTTP/1.1\r\n", "Host: fcm.googleapis.com\r\n",
				"Content-Encoding: aes128gcm\r\n", "Authorization: " + dryRunVAPID + "\r\n",
				"bytes aes128gcm: salt ", "plaintext (", "\n" + tc.plain + "\n"}, tc.want...)
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("%v: dry run lacks %q:\n%s", tc.args, w, out)
				}
			}
		}
	}
	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--subscription", strings.Replace(fcmSubscription, "R7sQMSD-sO4heEqd2ME0mw", "c2hvcnQ", 1)}, "keys.auth"},
		{[]string{"--subscription", strings.Replace(fcmSubscription, "BFDZ5JD0", "BADZ5JD0", 1)}, "keys.p256dh"},
		{[]string{"--subscription", strings.Replace(fcmSubscription, "https://", "http://", 1)}, "endpoint"},
		{[]string{"--subscription", "@" + filepath.Join(dir, "nosuch.json")}, "nosuch.json"},
		{[]string{"--subscription", fcmSubscription, "--uri", "https://fcm.googleapis.com/x"}, "not both"},
		{[]string{"--subscription", fcmSubscription, "--transport", "wns"}, "--transport wns takes --uri"},
		{[]string{"--transport", "webpush", "--uri", "https://fcm.googleapis.com/x"}, "needs --subscription"},
		{[]string{"--subscription", fcmSubscription, "--type", "flip"}, "unknown Web Push type"},
	} {
		args := append([]string{"send", "--dry-run", "--set", "text1=x"}, bad.args...)
		if code, _, errs := runCLI(t, t.Context(), args...); code != exitUsage || !strings.Contains(errs, bad.msg) {
			t.Errorf("%v: exit %d %q; want 2 with %q", bad.args, code, errs, bad.msg)
		}
	}
	// Without --dry-run a send needs [push.webpush].
	if code, _, errs := runCLI(t, t.Context(), "send", "--subscription", fcmSubscription, "--set", "text1=x"); code != exitUsage ||
		!strings.Contains(errs, "[push.webpush]") {
		t.Errorf("send without a VAPID key: exit %d %q", code, errs)
	}

	// With a configured key the dry run carries its real token.
	key, pub := vapidKey(t, dir)
	cfg := filepath.Join(dir, "tilecast.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("state = %q\n[http]\nlisten = \"\"\n[push.webpush]\nsubject = \"mailto:ops@tilecast.dev\"\n"+
		"vapid_private_key_file = %q\nurgency_toast = \"high\"\nicon = \"/icons/app-192.png\"\n", filepath.Join(dir, "state.db"), key)), 0o600)
	code, out, errs := runCLI(t, t.Context(), "send", "--config", cfg, "--subscription", fcmSubscription, "--set", "text1=x", "--dry-run")
	if code != exitOK {
		t.Fatalf("dry run with a key: exit %d %s", code, errs)
	}
	if !regexp.MustCompile(`Authorization: vapid t=eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+, k=`+pub+"\r\n").MatchString(out) ||
		!strings.Contains(out, "Urgency: high\r\n") || !strings.Contains(out, "\n"+`{"kind":"toast","title":"x","icon":"/icons/app-192.png"}`+"\n") {
		t.Errorf("dry run with a key lacks the VAPID token, the configured urgency or the icon:\n%s", out)
	}
}

// send --subscription with [push.webpush] reaches an emulated browser: the
// emulator checks the VAPID token against the key the browser subscribed
// with, decrypts with the browser's private key, and shows the toast.
func TestSendWebPushIsTheWire(t *testing.T) {
	dir := t.TempDir()
	key, pub := vapidKey(t, dir)
	emu := emulator.New(emulator.Options{})
	srv := httptest.NewServer(emu.Handler())
	defer srv.Close()
	defer emu.Close()
	emu.SetBaseURL(srv.URL)
	br, err := emu.CreateBrowser(emulator.Healthy, "chrome", emulator.BrowserParams{ApplicationServerKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := json.Marshal(br.Subscription)
	cfg := filepath.Join(dir, "tilecast.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("state = %q\n[http]\nlisten = \"\"\n[push]\nallow_private = true\n[push.webpush]\n"+
		"subject = \"mailto:ops@tilecast.dev\"\nvapid_private_key_file = %q\nallowed_hosts = [\"127.0.0.1\"]\n",
		filepath.Join(dir, "state.db"), key)), 0o600)
	code, out, errs := runCLI(t, t.Context(), "send", "--config", cfg, "--subscription", string(sub), "--type", "toast",
		"--set", "text1=Town News", "--set", "text2=Harbour bridge reopens", "--set", "param=/item/7")
	if code != exitOK || !strings.HasPrefix(out, "status 201 ") || !strings.Contains(out, "verdict delivered") {
		t.Fatalf("send: exit %d %q %s", code, out, errs)
	}
	st, _ := emu.Browser(br.Token)
	if len(st.Notifications) != 1 || st.Notifications[0].Title != "Town News" || st.Notifications[0].Body != "Harbour bridge reopens" ||
		st.Notifications[0].URL != "/item/7" {
		t.Errorf("browser shows %+v", st.Notifications)
	}
	// A key the browser did not subscribe with: 403, a failed send.
	other, err := emu.CreateBrowser(emulator.Healthy, "edge", emulator.BrowserParams{ApplicationServerKey: loadInteropKeys(t).VAPID.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	sub, _ = json.Marshal(other.Subscription)
	code, out, errs = runCLI(t, t.Context(), "send", "--config", cfg, "--subscription", string(sub), "--set", "text1=x")
	if code != exitRuntime || !strings.HasPrefix(out, "status 403 ") || !strings.Contains(errs, "VAPID") {
		t.Errorf("send signed with another key: exit %d %q %q", code, out, errs)
	}
}

// preview --transport webpush prints the toast and the one tile push a
// browser would get, as the shipped worker's JSON, with the feed's Topic.
func TestPreviewWebPush(t *testing.T) {
	feed := &growingFeed{}
	feed.add("Only story <b>bold</b>")
	fsrv := httptest.NewServer(feed)
	defer fsrv.Close()
	cfg := e2eConfig(t, fsrv.URL)
	code, out, errs := runCLI(t, t.Context(), "preview", "--config", cfg, "--feed", "news", "--transport", "webpush", "--as-new")
	if code != exitOK {
		t.Fatalf("preview: exit %d %s", code, errs)
	}
	for _, want := range []string{"# toast", "Host: fcm.googleapis.com", "Urgency: normal", "Content-Encoding: aes128gcm",
		// The tag is the feed's and item g0's: printf g0 | sha256sum.
		`{"kind":"toast","title":"Town News","body":"Only story bold","tag":"tilecast:news:f21b0ef89d8ee5da"}`, "# tile", "Urgency: low", "Topic: news",
		`{"kind":"tile","count":1,"title":"News","body":"Only story bold"}`, "Authorization: " + dryRunVAPID} {
		if !strings.Contains(out, want) {
			t.Errorf("preview --transport webpush lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "# badge") {
		t.Errorf("a Web Push tile is one push (the count inside), not a tile and a badge:\n%s", out)
	}
}

// channels add --subscription and channels import with a subscription
// field store a Web Push channel, deduplicated by endpoint (new keys
// update it), show its origin and a keys hash and never the keys, and
// refuse bad keys naming the field.
func TestChannelsWebPushSubscription(t *testing.T) {
	o := newOpsEnv(t)
	subFile := filepath.Join(o.dir, "sub.json")
	os.WriteFile(subFile, []byte(fcmSubscription), 0o600)
	code, out, errs := runCLI(t, t.Context(), "channels", "add", "--json", "--config", o.cfg, "--subscription", "@"+subFile, "--user", "ana")
	if code != exitOK {
		t.Fatalf("add: exit %d %s", code, errs)
	}
	var view struct {
		ID           string `json:"id"`
		URI          string `json:"uri"`
		Transport    string `json:"transport"`
		Subscription struct {
			Origin string `json:"origin"`
			Hash   string `json:"keys_sha256"`
		} `json:"subscription"`
	}
	if err := json.Unmarshal([]byte(out), &view); err != nil || view.Transport != "webpush" ||
		view.Subscription.Origin != "https://fcm.googleapis.com" || len(view.Subscription.Hash) != 64 {
		t.Fatalf("add printed %s (%v)", out, err)
	}
	if strings.Contains(out, "R7sQMSD") || strings.Contains(out, "BFDZ5JD0") {
		t.Errorf("add printed the keys:\n%s", out)
	}
	// Edge's endpoints are on notify.windows.com: with keys, Web Push.
	edge := strings.Replace(fcmSubscription, "https://fcm.googleapis.com/fcm/send/", "https://wns2-par02p.notify.windows.com/w/?token=", 1)
	if code, out, errs := runCLI(t, t.Context(), "channels", "add", "--json", "--config", o.cfg, "--subscription", edge); code != exitOK ||
		!strings.Contains(out, `"transport": "webpush"`) {
		t.Errorf("Edge subscription: exit %d %s %s; want a webpush channel", code, out, errs)
	}
	// The same endpoint with new keys: the same channel, a new hash.
	fresh, err := emulator.New(emulator.Options{BaseURL: "http://127.0.0.1:1"}).CreateBrowser(emulator.Healthy, "x")
	if err != nil {
		t.Fatal(err)
	}
	resub := fmt.Sprintf(`{"endpoint":"https://fcm.googleapis.com/fcm/send/dpH5lCsTSSM:APA91bH","expirationTime":null,"keys":{"p256dh":%q,"auth":%q}}`,
		fresh.Subscription.Keys.P256DH, fresh.Subscription.Keys.Auth)
	code, out2, errs := runCLI(t, t.Context(), "channels", "add", "--json", "--config", o.cfg, "--subscription", resub, "--user", "ana")
	if code != exitOK || !strings.Contains(out2, `"id": "`+view.ID+`"`) || strings.Contains(out2, view.Subscription.Hash) {
		t.Errorf("re-subscription: exit %d %s %s; want channel %s with a new keys hash", code, out2, errs, view.ID)
	}
	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--subscription", strings.Replace(fcmSubscription, "R7sQMSD-sO4heEqd2ME0mw", "c2hvcnQ", 1)}, "keys.auth"},
		{[]string{"--subscription", strings.Replace(fcmSubscription, "BFDZ5JD0", "BADZ5JD0", 1)}, "keys.p256dh"},
		{[]string{"--subscription", strings.Replace(fcmSubscription, "fcm.googleapis.com", "push.evil.dev", 1)}, "push.webpush.allowed_hosts"},
		{[]string{"--subscription", strings.Replace(fcmSubscription, `"expirationTime":null`, `"expirationTime":1000`, 1)}, "expirationTime"},
		{[]string{"--subscription", fcmSubscription, "--uri", "https://db3.notify.live.net/x"}, "--subscription"},
		{[]string{"--transport", "webpush", "--uri", "https://fcm.googleapis.com/fcm/send/x"}, "takes --subscription"},
		{[]string{"--transport", "wns", "--subscription", fcmSubscription}, "keys are for webpush"},
	} {
		code, _, errs := runCLI(t, t.Context(), append([]string{"channels", "add", "--config", o.cfg}, bad.args...)...)
		if code != exitUsage || !strings.Contains(errs, bad.msg) {
			t.Errorf("add %.40s: exit %d %q, want 2 with %q", strings.Join(bad.args, " "), code, errs, bad.msg)
		}
	}

	// Import: JSON lines with a subscription field; an expirationTime is kept.
	lines := filepath.Join(o.dir, "import.jsonl")
	os.WriteFile(lines, []byte(
		`{"subscription":`+strings.Replace(fcmSubscription, "APA91bH", "second", 1)+`,"user":"bob","feeds":["news"]}`+"\n"+
			`{"subscription":`+strings.Replace(strings.Replace(fcmSubscription, "APA91bH", "third", 1), `"expirationTime":null`, `"expirationTime":4102444800000`, 1)+`}`+"\n"+
			`{"uri":"https://fcm.googleapis.com/x","subscription":`+fcmSubscription+`}`+"\n"+
			`{"subscription":`+strings.Replace(fcmSubscription, "R7sQMSD-sO4heEqd2ME0mw", "c2hvcnQ", 1)+`}`+"\n"), 0o600)
	code, out, errs = runCLI(t, t.Context(), "channels", "import", "--config", o.cfg, lines)
	if code != exitOK || !strings.Contains(out, "added 2, updated 0, rejected 2") || !strings.Contains(out, "line 3: give uri or subscription, not both") ||
		!strings.Contains(out, "line 4: subscription.keys.auth") {
		t.Errorf("import: exit %d %s %s", code, out, errs)
	}
	db, err := store.Open(o.state, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	chs, err := db.Channels("")
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 4 {
		t.Fatalf("%d channels stored, want 4", len(chs))
	}
	for _, ch := range chs {
		if ch.Keys == nil || len(ch.Keys.P256DH) != webpush.PublicKeyLen || len(ch.Keys.Auth) != webpush.AuthLen {
			t.Errorf("channel %s stored without its keys: %+v", ch.URI, ch.Keys)
		}
		if strings.HasSuffix(ch.URI, "third") != !ch.Expires.IsZero() {
			t.Errorf("channel %s expires %v", ch.URI, ch.Expires)
		}
	}
}

// TestWebPushService: the daemon pauses a push service's hosts together
// when a wildcard of [push.webpush] allowed_hosts covers them (Edge's
// regional hosts); a host named exactly, or not allowed, is its own.
func TestWebPushService(t *testing.T) {
	service := webPushService(config.DefaultWebPushHosts())
	want := map[string]string{
		"https://wns2-par02p.notify.windows.com":    "*.notify.windows.com",
		"https://wns2-bl2p.notify.windows.com":      "*.notify.windows.com",
		"https://updates.push.services.mozilla.com": "*.push.services.mozilla.com",
		"https://fcm.googleapis.com":                "",
		"http://127.0.0.1:8080":                     "",
		"::":                                        "",
	}
	for pass := range 2 { // the second from what the first remembered
		for origin, w := range want {
			if got := service(origin); got != w {
				t.Errorf("pass %d: service(%q) = %q, want %q", pass+1, origin, got, w)
			}
		}
	}
}
