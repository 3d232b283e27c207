package api

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/accessledger/accessledger/event"
)

// rowEncoder writes query results in an export format.
type rowEncoder interface {
	encode(index uint64, entry []byte) error
	flush() error
}

// decodeEntry reads a stored leaf and, if it is an event, the event.
// Either may be nil for an entry that is not what the API writes.
func decodeEntry(entry []byte) (*event.Leaf, *event.Event) {
	l, err := event.DecodeLeaf(entry)
	if err != nil {
		return nil, nil
	}
	if l.Kind != event.KindEvent {
		return l, nil
	}
	var e event.Event
	if err := json.Unmarshal(l.Body, &e); err != nil {
		return l, nil
	}
	return l, &e
}

// csvColumns are the columns of format=csv, one row per entry. Leaves that
// are not events fill the first four only; submitted_by is empty for
// events written before it was recorded.
var csvColumns = []string{"index", "leaf_hash", "kind", "received_at", "id", "time", "service",
	"actor_id", "actor_type", "actor_session", "source_ip", "source_port", "user_agent", "country", "asn",
	"action", "category", "outcome", "reason", "resource_type", "resource_id", "mfa", "request_id", "tenant", "attributes",
	// Columns added later go at the end, so that existing positions stay.
	"submitted_by"}

type csvEncoder struct {
	w      *csv.Writer
	header bool
	// raw writes every value as recorded (csv_raw=true); otherwise a
	// cell that a spreadsheet would read as a formula is neutralised
	// (csvCell).
	raw bool
	row []string
}

// csvCell neutralises a cell that a spreadsheet would open as a formula
// (OWASP, CSV injection): one that begins with =, +, -, @, a tab or a
// carriage return is prefixed with a single quote. Events carry text from
// submitters and from outsiders (an actor id, a reason, a user agent), and
// an export is a download that opens in a spreadsheet.
func csvCell(v string) string {
	if v != "" && strings.IndexByte("=+-@\t\r", v[0]) >= 0 {
		return "'" + v
	}
	return v
}

func newCSVEncoder(w io.Writer) *csvEncoder {
	return &csvEncoder{w: csv.NewWriter(w), row: make([]string, len(csvColumns))}
}

func (e *csvEncoder) encode(index uint64, entry []byte) error {
	if !e.header {
		e.header = true
		if err := e.w.Write(csvColumns); err != nil {
			return err
		}
	}
	clear(e.row)
	h := leafHash(entry)
	e.row[0], e.row[1] = strconv.FormatUint(index, 10), base64.StdEncoding.EncodeToString(h[:])
	l, ev := decodeEntry(entry)
	if l != nil {
		e.row[2], e.row[3] = string(l.Kind), l.ReceivedAt.UTC().Format(event.TimeFormat)
		e.row[25] = l.SubmittedBy
	}
	if ev != nil {
		r := e.row[4:]
		r[0], r[1], r[2] = ev.ID, ev.Time.UTC().Format(event.TimeFormat), ev.Service
		r[3], r[4], r[5] = ev.Actor.ID, ev.Actor.Type, ev.Actor.Session
		r[6] = ev.Source.IP.String()
		if ev.Source.Port != 0 {
			r[7] = strconv.Itoa(int(ev.Source.Port))
		}
		r[8] = ev.Source.UserAgent
		if ev.Source.Geo != nil {
			r[9] = ev.Source.Geo.Country
		}
		if ev.Source.ASN != 0 {
			r[10] = strconv.FormatUint(uint64(ev.Source.ASN), 10)
		}
		r[11], r[12], r[13], r[14] = ev.Action, ev.Category, ev.Outcome, ev.Reason
		if ev.Resource != nil {
			r[15], r[16] = ev.Resource.Type, ev.Resource.ID
		}
		if ev.MFA != nil {
			r[17] = strconv.FormatBool(*ev.MFA)
		}
		r[18], r[19] = ev.RequestID, ev.Tenant
		if len(ev.Attributes) > 0 {
			a, _ := json.Marshal(ev.Attributes)
			r[20] = string(a)
		}
	}
	if !e.raw {
		// Every cell but leaf_hash, a base64 hash the server makes: it
		// may begin with + but holds no ( or | to call anything, and it
		// must match the entry. Index, times and numbers begin with a
		// digit.
		for k, v := range e.row {
			if k != 1 {
				e.row[k] = csvCell(v)
			}
		}
	}
	return e.w.Write(e.row)
}

func (e *csvEncoder) flush() error {
	if !e.header {
		e.header = true
		if err := e.w.Write(csvColumns); err != nil {
			return err
		}
	}
	e.w.Flush()
	return e.w.Error()
}

// OCSF (Open Cybersecurity Schema Framework) 1.3 mapping of format=ocsf:
// one OCSF event per line. Logins and logouts are Authentication (class
// 3002, category 3, Identity & Access Management: activity 1 Logon, 2
// Logoff); every other action is API Activity (class 6003, category 6,
// Application Activity: create, read, update and delete are activities 1
// to 4, anything else 99 Other with the action as activity_name). Entries
// that are not events (alerts, responses) are skipped. The README's table
// lists each field.
const ocsfVersion = "1.3.0"

type ocsfEvent struct {
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	TypeUID      int    `json:"type_uid"`
	SeverityID   int    `json:"severity_id"`
	Severity     string `json:"severity"`
	Time         int64  `json:"time"`
	StatusID     int    `json:"status_id"`
	Status       string `json:"status"`
	StatusDetail string `json:"status_detail,omitempty"`

	Metadata ocsfMetadata `json:"metadata"`

	// Authentication (3002).
	User    *ocsfUser    `json:"user,omitempty"`
	IsMFA   *bool        `json:"is_mfa,omitempty"`
	Session *ocsfSession `json:"session,omitempty"`
	Service *ocsfNamed   `json:"service,omitempty"`

	// API Activity (6003).
	Actor     *ocsfActor     `json:"actor,omitempty"`
	API       *ocsfAPI       `json:"api,omitempty"`
	Resources []ocsfResource `json:"resources,omitempty"`

	SrcEndpoint ocsfEndpoint     `json:"src_endpoint"`
	HTTPRequest *ocsfHTTPRequest `json:"http_request,omitempty"`
	Unmapped    ocsfUnmapped     `json:"unmapped"`
}

type ocsfMetadata struct {
	Version        string   `json:"version"`
	Product        ocsfProd `json:"product"`
	UID            string   `json:"uid,omitempty"`
	LoggedTime     int64    `json:"logged_time"`
	CorrelationUID string   `json:"correlation_uid,omitempty"`
	TenantUID      string   `json:"tenant_uid,omitempty"`
	LogName        string   `json:"log_name"`
	Sequence       uint64   `json:"sequence"`
	OriginalTime   string   `json:"original_time"`
}

type ocsfProd struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

type ocsfUser struct {
	UID    string `json:"uid"`
	Type   string `json:"type,omitempty"`
	TypeID int    `json:"type_id"`
}

type ocsfSession struct {
	UID string `json:"uid"`
}

type ocsfNamed struct {
	Name string `json:"name"`
}

type ocsfActor struct {
	User    ocsfUser     `json:"user"`
	Session *ocsfSession `json:"session,omitempty"`
}

type ocsfAPI struct {
	Operation string        `json:"operation"`
	Service   ocsfNamed     `json:"service"`
	Request   *ocsfAPIReqID `json:"request,omitempty"`
}

type ocsfAPIReqID struct {
	UID string `json:"uid"`
}

type ocsfResource struct {
	Type string `json:"type,omitempty"`
	UID  string `json:"uid,omitempty"`
}

type ocsfEndpoint struct {
	IP               string        `json:"ip"`
	Port             uint16        `json:"port,omitempty"`
	Location         *ocsfLocation `json:"location,omitempty"`
	AutonomousSystem *ocsfASN      `json:"autonomous_system,omitempty"`
}

type ocsfLocation struct {
	Country string   `json:"country,omitempty"`
	Lat     *float64 `json:"lat,omitempty"`
	Long    *float64 `json:"long,omitempty"`
}

type ocsfASN struct {
	Number uint32 `json:"number"`
}

type ocsfHTTPRequest struct {
	UserAgent string `json:"user_agent"`
}

// ocsfUnmapped holds what OCSF has no place for, each event field under
// its own name and in its own shape: category, attributes, mfa of an API
// Activity, resource of an Authentication or one without an id, and
// source.geo without a country (coordinates alone).
type ocsfUnmapped struct {
	LogIndex   uint64              `json:"log_index"`
	LeafHash   string              `json:"leaf_hash"`
	Category   string              `json:"category"`
	Attributes map[string]string   `json:"attributes,omitempty"`
	MFA        *bool               `json:"mfa,omitempty"`
	Resource   *ocsfUnmappedRes    `json:"resource,omitempty"`
	Source     *ocsfUnmappedSource `json:"source,omitempty"`
	// SubmittedBy is the API key that submitted the event: OCSF 1.3.0
	// has no place for the principal that reported an event to a log
	// (metadata.loggers and log_provider describe logging products, and
	// actor is the event's own actor).
	SubmittedBy string `json:"submitted_by,omitempty"`
}

// ocsfUnmappedRes is an event's resource, as the event has it.
type ocsfUnmappedRes struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
}

// ocsfUnmappedSource carries source.geo, as the event has it.
type ocsfUnmappedSource struct {
	Geo ocsfUnmappedGeo `json:"geo"`
}

type ocsfUnmappedGeo struct {
	Lat *float64 `json:"lat,omitempty"`
	Lon *float64 `json:"lon,omitempty"`
}

type ocsfEncoder struct {
	w      io.Writer
	origin string
	buf    bytes.Buffer
	enc    *json.Encoder
}

func newOCSFEncoder(w io.Writer, origin string) *ocsfEncoder {
	e := &ocsfEncoder{w: w, origin: origin}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}

func (e *ocsfEncoder) encode(index uint64, entry []byte) error {
	l, ev := decodeEntry(entry)
	if ev == nil {
		return nil // not an event: OCSF export carries events only
	}
	h := leafHash(entry)
	e.buf.Reset()
	if err := e.enc.Encode(ocsfOf(index, h[:], l, ev, e.origin)); err != nil {
		return err
	}
	_, err := e.w.Write(e.buf.Bytes())
	return err
}

func (e *ocsfEncoder) flush() error { return nil }

func millis(t time.Time) int64 { return t.UnixMilli() }

// ocsfUserType maps actor.type to OCSF user type_id: 1 User, 2 Admin, 3
// System (services), 0 Unknown.
func ocsfUserType(t string) (string, int) {
	switch t {
	case event.ActorUser:
		return "User", 1
	case event.ActorAdmin:
		return "Admin", 2
	case event.ActorService:
		return "System", 3
	}
	return "", 0
}

// ocsfOf maps one event to OCSF.
func ocsfOf(index uint64, leafHash []byte, l *event.Leaf, ev *event.Event, origin string) ocsfEvent {
	o := ocsfEvent{
		SeverityID: 1, Severity: "Informational",
		Time:         millis(ev.Time),
		StatusDetail: ev.Reason,
		Metadata: ocsfMetadata{
			Version:        ocsfVersion,
			Product:        ocsfProd{Name: "accessledger", VendorName: "accessledger"},
			UID:            ev.ID,
			LoggedTime:     millis(l.ReceivedAt),
			CorrelationUID: ev.RequestID,
			TenantUID:      ev.Tenant,
			LogName:        origin,
			Sequence:       index,
			OriginalTime:   ev.Time.UTC().Format(event.TimeFormat),
		},
		SrcEndpoint: ocsfEndpoint{IP: ev.Source.IP.String(), Port: ev.Source.Port},
		Unmapped: ocsfUnmapped{LogIndex: index, LeafHash: base64.StdEncoding.EncodeToString(leafHash),
			Category: ev.Category, Attributes: ev.Attributes, SubmittedBy: l.SubmittedBy},
	}
	switch ev.Outcome {
	case event.OutcomeSuccess:
		o.StatusID, o.Status = 1, "Success"
	case event.OutcomeFailure:
		o.StatusID, o.Status = 2, "Failure"
	default:
		o.StatusID, o.Status = 0, "Unknown"
	}
	// OCSF 1.3.0's location needs at least one of city, country,
	// postal_code and region: coordinates alone would make the record
	// invalid, so they go to unmapped.
	if g := ev.Source.Geo; g != nil {
		if g.Country != "" {
			o.SrcEndpoint.Location = &ocsfLocation{Country: g.Country, Lat: g.Lat, Long: g.Lon}
		} else if g.Lat != nil || g.Lon != nil {
			o.Unmapped.Source = &ocsfUnmappedSource{Geo: ocsfUnmappedGeo{Lat: g.Lat, Lon: g.Lon}}
		}
	}
	if ev.Source.ASN != 0 {
		o.SrcEndpoint.AutonomousSystem = &ocsfASN{Number: ev.Source.ASN}
	}
	if ev.Source.UserAgent != "" {
		o.HTTPRequest = &ocsfHTTPRequest{UserAgent: ev.Source.UserAgent}
	}
	typ, typeID := ocsfUserType(ev.Actor.Type)
	user := ocsfUser{UID: ev.Actor.ID, Type: typ, TypeID: typeID}
	var session *ocsfSession
	if ev.Actor.Session != "" {
		session = &ocsfSession{UID: ev.Actor.Session}
	}
	switch ev.Action {
	case "login", "logout":
		o.ClassUID, o.ClassName = 3002, "Authentication"
		o.CategoryUID, o.CategoryName = 3, "Identity & Access Management"
		o.ActivityID, o.ActivityName = 1, "Logon"
		if ev.Action == "logout" {
			o.ActivityID, o.ActivityName = 2, "Logoff"
		}
		o.User, o.Session, o.IsMFA = &user, session, ev.MFA
		o.Service = &ocsfNamed{Name: ev.Service}
		// Authentication has no resources.
		if r := ev.Resource; r != nil {
			o.Unmapped.Resource = &ocsfUnmappedRes{Type: r.Type, ID: r.ID}
		}
	default:
		o.ClassUID, o.ClassName = 6003, "API Activity"
		o.CategoryUID, o.CategoryName = 6, "Application Activity"
		o.ActivityID, o.ActivityName = 99, ev.Action
		switch ev.Action {
		case "create":
			o.ActivityID, o.ActivityName = 1, "Create"
		case "read":
			o.ActivityID, o.ActivityName = 2, "Read"
		case "update":
			o.ActivityID, o.ActivityName = 3, "Update"
		case "delete":
			o.ActivityID, o.ActivityName = 4, "Delete"
		}
		o.Actor = &ocsfActor{User: user, Session: session}
		o.API = &ocsfAPI{Operation: ev.Action, Service: ocsfNamed{Name: ev.Service}}
		if ev.RequestID != "" {
			o.API.Request = &ocsfAPIReqID{UID: ev.RequestID}
		}
		// OCSF 1.3.0's resource_details needs a name or a uid: a
		// resource with a type alone goes to unmapped.
		if r := ev.Resource; r != nil {
			if r.ID != "" {
				o.Resources = []ocsfResource{{Type: r.Type, UID: r.ID}}
			} else {
				o.Unmapped.Resource = &ocsfUnmappedRes{Type: r.Type}
			}
		}
		// API Activity has no is_mfa.
		o.Unmapped.MFA = ev.MFA
	}
	o.TypeUID = o.ClassUID*100 + o.ActivityID
	return o
}
