module example.com/clientmod

go 1.26.0

require (
	github.com/bluechi-go/bluechi v0.0.0
	github.com/godbus/dbus/v5 v5.2.4
)

require golang.org/x/sys v0.48.0 // indirect

replace github.com/bluechi-go/bluechi => ../..
