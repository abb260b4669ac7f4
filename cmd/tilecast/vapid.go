package main

import (
	"context"
	"fmt"

	"github.com/tilecast/tilecast/notify/webpush"
)

const vapidUsage = `Usage: tilecast vapid generate --out FILE | public --key FILE   (--help on each)

Web Push's VAPID key ([push.webpush] vapid_private_key_file): the key every
browser subscription is made with (the page passes its public half to
pushManager.subscribe as applicationServerKey; the daemon serves it at GET
/v1/webpush/key).
`

func cmdVAPID(ctx context.Context, e env) error {
	sub := map[string]func(context.Context, env) error{
		"generate": cmdVAPIDGenerate,
		"public":   cmdVAPIDPublic,
	}
	if len(e.args) == 0 || e.args[0] == "-h" || e.args[0] == "--help" {
		fmt.Fprint(e.stdout, vapidUsage)
		if len(e.args) == 0 {
			return usagef("vapid: a subcommand is required")
		}
		return nil
	}
	run, ok := sub[e.args[0]]
	if !ok {
		return usagef("vapid: unknown subcommand %q (generate, public)", e.args[0])
	}
	e.args = e.args[1:]
	return run(ctx, e)
}

func cmdVAPIDGenerate(_ context.Context, e env) error {
	fs := newFlags(e, "vapid generate", "vapid generate --out FILE\n\n"+
		"Writes a new P-256 VAPID private key to FILE (PKCS#8 PEM, mode 0600; an existing\n"+
		"file is never overwritten: subscriptions made with its key would stop working)\n"+
		"and prints the public key in base64url, for the web app's\n"+
		"pushManager.subscribe({applicationServerKey}). Point [push.webpush]\n"+
		"vapid_private_key_file at FILE. Moving from npm web-push? Keep its key: the file\n"+
		"may hold the private key web-push printed (base64url) or its --json output.\n")
	out := fs.String("out", "", "file to write the private key to")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("vapid generate: --out FILE is required")
	}
	if fs.NArg() > 0 {
		return usagef("vapid generate: unexpected argument %q", fs.Arg(0))
	}
	k, err := webpush.GenerateKey(*out)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, k.PublicKey())
	return nil
}

func cmdVAPIDPublic(_ context.Context, e env) error {
	fs := newFlags(e, "vapid public", "vapid public --key FILE\n\n"+
		"Prints the public key (base64url) of the VAPID private key in FILE: PEM, the\n"+
		"base64url private key npm web-push prints, or web-push's JSON.\n")
	key := fs.String("key", "", "the VAPID private key file")
	if err := parseFlags(fs, e, e.args); err != nil {
		return err
	}
	if *key == "" {
		return usagef("vapid public: --key FILE is required")
	}
	k, err := webpush.LoadVAPIDKey(*key)
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintln(e.stdout, k.PublicKey())
	return nil
}
