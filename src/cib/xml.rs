//! The crate's one XML reader: a small element tree over quick-xml, enough to read a CIB
//! or a tool's `--output-as=xml` answer (crm_simulate, crm_mon, cibadmin), change it and
//! write it back. Comments, processing instructions and whitespace between elements are
//! dropped; text inside elements is kept. It depends on nothing else in the crate, so
//! `sys` (reading tool output) and the CIB code share it; values are escaped with
//! quick-xml's own [`escape`].

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

pub use quick_xml::escape::escape;

/// A document that is not well-formed XML (or not the shape a reader expects).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("XML: {0}")]
pub struct XmlError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn new(name: &str) -> Element {
        Element {
            name: name.to_string(),
            attrs: Vec::new(),
            children: Vec::new(),
            text: String::new(),
        }
    }

    pub fn with_attr(mut self, k: &str, v: &str) -> Element {
        self.set(k, v);
        self
    }

    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, k: &str, v: &str) {
        match self.attrs.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => self.attrs.push((k.to_string(), v.to_string())),
        }
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Every element below this one (depth first, document order).
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        fn walk<'a>(e: &'a Element, out: &mut Vec<&'a Element>) {
            for c in &e.children {
                out.push(c);
                walk(c, out);
            }
        }
        walk(self, &mut out);
        out
    }

    /// Calls `f` for every element below this one, depth first in document order, with
    /// the chain of its ancestors from this element down to its parent.
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Element, &[&'a Element])) {
        fn walk<'a>(
            e: &'a Element,
            up: &mut Vec<&'a Element>,
            f: &mut impl FnMut(&'a Element, &[&'a Element]),
        ) {
            up.push(e);
            for c in &e.children {
                f(c, up);
                walk(c, up, f);
            }
            up.pop();
        }
        walk(self, &mut Vec::new(), f);
    }

    /// The first element at or below this one named `name`.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// Writes the element as indented XML.
    pub fn write(&self, out: &mut String, indent: usize) {
        let pad = "  ".repeat(indent);
        out.push_str(&pad);
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}=\"{}\"", escape(v)));
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>\n");
            return;
        }
        out.push('>');
        if self.children.is_empty() {
            out.push_str(&escape(&self.text));
        } else {
            out.push('\n');
            for c in &self.children {
                c.write(out, indent + 1);
            }
            out.push_str(&pad);
        }
        out.push_str(&format!("</{}>\n", self.name));
    }

    pub fn to_xml(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s
    }
}

fn start(e: &BytesStart) -> Result<Element, XmlError> {
    let name = e.name().as_ref().to_string();
    let mut el = Element::new(&name);
    for a in e.attributes() {
        let a = a.map_err(|x| XmlError(format!("<{name}>: {x}")))?;
        let k = a.key.as_ref().to_string();
        let v = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|x| XmlError(format!("<{name} {k}>: {x}")))?;
        el.attrs.push((k, v.into_owned()));
    }
    Ok(el)
}

/// Parses a document into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut r = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let ev = r
            .read_event()
            .map_err(|e| XmlError(format!("at byte {}: {e}", r.buffer_position())))?;
        match ev {
            Event::Start(e) => stack.push(start(&e)?),
            Event::Empty(e) => {
                let el = start(&e)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(XmlError("more than one root element".into())),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(XmlError("more than one root element".into())),
                }
            }
            Event::Text(t) => {
                if let Some(p) = stack.last_mut() {
                    let s = t.xml_content(quick_xml::XmlVersion::Implicit1_0);
                    let s = s.trim();
                    if !s.is_empty() {
                        p.text.push_str(s);
                    }
                }
            }
            Event::GeneralRef(g) => {
                if let Some(p) = stack.last_mut() {
                    if let Some(ch) = g
                        .resolve_char_ref()
                        .map_err(|e| XmlError(format!("character reference: {e}")))?
                    {
                        p.text.push(ch);
                        continue;
                    }
                    let name = g.into_inner();
                    let c = match name.as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        other => return Err(XmlError(format!("unknown entity &{other};"))),
                    };
                    p.text.push_str(c);
                }
            }
            Event::CData(t) => {
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&t.into_inner());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError(format!("<{}> is not closed", stack[0].name)));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let doc = "<?xml version=\"1.0\"?>\n<!-- c --><a x=\"1 &amp; 2\"><b y=\"&quot;\"/><c>t&lt;x</c></a>";
        let e = parse(doc).unwrap();
        assert_eq!(e.attr("x"), Some("1 & 2"));
        assert_eq!(e.child("b").unwrap().attr("y"), Some("\""));
        assert_eq!(e.child("c").unwrap().text, "t<x");
        let again = parse(&e.to_xml()).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn visit_sees_every_element_with_its_ancestors() {
        let e = parse("<a id=\"1\"><b id=\"2\"><c id=\"3\"/></b><d id=\"4\"/></a>").unwrap();
        let mut seen = Vec::new();
        e.visit(&mut |el, up| {
            let chain: Vec<&str> = up.iter().map(|u| u.name.as_str()).collect();
            seen.push(format!("{}<{}", el.name, chain.join("/")));
        });
        assert_eq!(seen, ["b<a", "c<a/b", "d<a"]);
        assert_eq!(e.find("c").and_then(|c| c.attr("id")), Some("3"));
        assert_eq!(e.find("a").map(|a| a.name.as_str()), Some("a"));
        assert!(e.find("x").is_none());
        assert_eq!(escape("a<'\"&>"), "a&lt;&apos;&quot;&amp;&gt;");
    }

    #[test]
    fn broken_documents_are_errors() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
    }
}
