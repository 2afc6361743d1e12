// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"github.com/bluechi-go/bluechi/internal/busnames"
	"github.com/bluechi-go/bluechi/internal/introspect"
)

// IntrospectHeader starts every document served by Introspect.
const IntrospectHeader = introspect.Header

const (
	peerXML           = busnames.DBusPeerXML
	introspectableXML = busnames.DBusIntrospectableXML
	propertiesXML     = busnames.DBusPropertiesXML
)
