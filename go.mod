module github.com/bluechi-go/bluechi

go 1.26

require (
	github.com/godbus/dbus/v5 v5.2.4
	github.com/google/go-cmp v0.7.0
	golang.org/x/sys v0.27.0
)

require github.com/coreos/go-systemd/v22 v22.7.0

require (
	github.com/cpuguy83/go-md2man/v2 v2.0.7 // indirect
	github.com/russross/blackfriday/v2 v2.1.0 // indirect
)

tool github.com/cpuguy83/go-md2man/v2
