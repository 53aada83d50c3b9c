//! Words of the HTML and JavaScript vocabularies the rules judge by: elements that run or load
//! active content, and the JavaScript functions and objects payloads reach for.

/// Tags that load or run active content whatever their attributes.
pub(super) fn active_tag(name: &[u8]) -> bool {
    matches!(
        name,
        b"script"
            | b"iframe"
            | b"frame"
            | b"frameset"
            | b"object"
            | b"embed"
            | b"applet"
            | b"isindex"
            | b"portal"
            | b"import"
            | b"vmlframe"
            | b"xml"
            | b"bgsound"
            | b"layer"
            | b"ilayer"
            | b"fencedframe"
            | b"handler"
            | b"listener"
    )
}

/// JavaScript functions and objects that payloads call to prove execution or to do harm.
pub(super) const SINKS: &[&[u8]] = &[
    b"alert",
    b"prompt",
    b"confirm",
    b"eval",
    b"settimeout",
    b"setinterval",
    b"string.fromcharcode",
    b"document.cookie",
    b"document.write",
    b"document.location",
    b"document.domain",
    b"window.location",
    b"location.href",
    b"top.location",
    b"self.location",
    b"window.open",
    b"execscript",
    b"msgbox",
    b"activexobject",
    b"constructor",
    b"window[",
    b"top[",
    b"self[",
    b"parent[",
    b"this[",
    b"globalthis",
    b"document[",
];
