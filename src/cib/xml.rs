//! A small element tree over quick-xml: enough to read a CIB or a tool's `--output-as=xml`
//! answer, change it and write it back. Comments, processing instructions and whitespace
//! between elements are dropped; text inside elements is kept.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::template::xml_escape;
use super::CibError;

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

    /// Writes the element as indented XML.
    pub fn write(&self, out: &mut String, indent: usize) {
        let pad = "  ".repeat(indent);
        out.push_str(&pad);
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attrs {
            out.push_str(&format!(" {k}=\"{}\"", xml_escape(v)));
        }
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>\n");
            return;
        }
        out.push('>');
        if self.children.is_empty() {
            out.push_str(&xml_escape(&self.text));
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

fn start(e: &BytesStart) -> Result<Element, CibError> {
    let name = e.name().as_ref().to_string();
    let mut el = Element::new(&name);
    for a in e.attributes() {
        let a = a.map_err(|x| CibError::Xml(format!("<{name}>: {x}")))?;
        let k = a.key.as_ref().to_string();
        let v = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|x| CibError::Xml(format!("<{name} {k}>: {x}")))?;
        el.attrs.push((k, v.into_owned()));
    }
    Ok(el)
}

/// Parses a document into its root element.
pub fn parse(text: &str) -> Result<Element, CibError> {
    let mut r = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let ev = r
            .read_event()
            .map_err(|e| CibError::Xml(format!("at byte {}: {e}", r.buffer_position())))?;
        match ev {
            Event::Start(e) => stack.push(start(&e)?),
            Event::Empty(e) => {
                let el = start(&e)?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(CibError::Xml("more than one root element".into())),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| CibError::Xml("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(CibError::Xml("more than one root element".into())),
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
                        .map_err(|e| CibError::Xml(format!("character reference: {e}")))?
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
                        other => return Err(CibError::Xml(format!("unknown entity &{other};"))),
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
        return Err(CibError::Xml(format!("<{}> is not closed", stack[0].name)));
    }
    root.ok_or_else(|| CibError::Xml("no root element".into()))
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
    fn broken_documents_are_errors() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
    }
}
