// SPDX-License-Identifier: Apache-2.0

package dbusrt

import (
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Standard D-Bus error names used by the runtime and by handlers.
const (
	ErrFailed              = "org.freedesktop.DBus.Error.Failed"
	ErrInvalidArgs         = "org.freedesktop.DBus.Error.InvalidArgs"
	ErrUnknownMethod       = "org.freedesktop.DBus.Error.UnknownMethod"
	ErrUnknownObject       = "org.freedesktop.DBus.Error.UnknownObject"
	ErrUnknownInterface    = "org.freedesktop.DBus.Error.UnknownInterface"
	ErrUnknownProperty     = "org.freedesktop.DBus.Error.UnknownProperty"
	ErrPropertyReadOnly    = "org.freedesktop.DBus.Error.PropertyReadOnly"
	ErrServiceUnknown      = "org.freedesktop.DBus.Error.ServiceUnknown"
	ErrAddressInUse        = "org.freedesktop.DBus.Error.AddressInUse"
	ErrAccessDenied        = "org.freedesktop.DBus.Error.AccessDenied"
	ErrInconsistentMessage = "org.freedesktop.DBus.Error.InconsistentMessage"
	ErrNoMemory            = "org.freedesktop.DBus.Error.NoMemory"
	ErrLimitsExceeded      = "org.freedesktop.DBus.Error.LimitsExceeded"
	ErrNoReply             = "org.freedesktop.DBus.Error.NoReply"
)

// NewError returns a D-Bus error with the given name and a formatted message.
func NewError(name, format string, args ...any) *dbus.Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &dbus.Error{Name: name, Body: []any{msg}}
}

// ErrorName returns the D-Bus error name carried by err (directly or wrapped,
// a godbus error or one of the public client's), or "" when err is not a
// D-Bus error.
func ErrorName(err error) string {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name
	}
	var pe *dbus.Error
	if errors.As(err, &pe) && pe != nil {
		return pe.Name
	}
	var de dbus.DBusError // the public client's *bluechi.Error
	if errors.As(err, &de) {
		name, _ := de.DBusError()
		return name
	}
	return ""
}

// ErrorMessage returns the first string of a D-Bus error body, or err.Error().
func ErrorMessage(err error) string {
	var pe *dbus.Error
	if errors.As(err, &pe) && pe != nil && len(pe.Body) > 0 {
		if s, ok := pe.Body[0].(string); ok {
			return s
		}
	}
	var e dbus.Error
	if errors.As(err, &e) && len(e.Body) > 0 {
		if s, ok := e.Body[0].(string); ok {
			return s
		}
	}
	var de dbus.DBusError // the public client's *bluechi.Error
	if errors.As(err, &de) {
		if _, body := de.DBusError(); len(body) > 0 {
			if s, ok := body[0].(string); ok {
				return s
			}
		}
	}
	return err.Error()
}

// AsDBusError turns any error into a *dbus.Error, keeping the name and body of
// D-Bus errors and mapping everything else to Failed with err's text.
func AsDBusError(err error) *dbus.Error {
	if err == nil {
		return nil
	}
	var pe *dbus.Error
	if errors.As(err, &pe) && pe != nil {
		return pe
	}
	var e dbus.Error
	if errors.As(err, &e) {
		return &e
	}
	var de dbus.DBusError
	if errors.As(err, &de) {
		name, body := de.DBusError()
		return &dbus.Error{Name: name, Body: body}
	}
	return NewError(ErrFailed, "%s", err.Error())
}
