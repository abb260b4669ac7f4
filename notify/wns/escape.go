package wns

import "bytes"

// escapeText writes s as element content: the wns module's four
// substitutions (& < > ", apostrophes and non-ASCII pass through as
// UTF-8) and, a tilecast fix, a carriage return as &#13; — written
// literally an XML parser turns it (and CR LF) into a plain newline.
func escapeText(b *bytes.Buffer, s string) { escape(b, s, false) }

// escapeAttr writes s as a double-quoted attribute value: as escapeText,
// plus tab and newline as character references, since attribute-value
// normalisation would turn them into spaces.
func escapeAttr(b *bytes.Buffer, s string) { escape(b, s, true) }

func escape(b *bytes.Buffer, s string, attr bool) {
	last := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '&':
			rep = "&amp;"
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '"':
			rep = "&quot;"
		case '\r':
			rep = "&#13;"
		case '\n':
			if !attr {
				continue
			}
			rep = "&#10;"
		case '\t':
			if !attr {
				continue
			}
			rep = "&#9;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(rep)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// attr writes ` name="value"` (value escaped), or nothing for an empty value.
func attr(b *bytes.Buffer, name, value string) {
	if value == "" {
		return
	}
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString(`="`)
	escapeAttr(b, value)
	b.WriteByte('"')
}
