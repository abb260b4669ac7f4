// Package notify turns feed data into push payloads: it executes a feed's
// text/templates, applies the text limits (XML-forbidden characters removed,
// truncation on a character boundary with "…" until the payload fits) and
// hands the resulting payload model to a transport encoder such as notify/mpns.
package notify
