//! The two configuration syntaxes the checks read: corosync.conf (`key: value` lines in
//! `name { }` blocks) and DRBD's (`words;` statements and `words { }` blocks, `#`
//! comments, quoted strings).

/// One corosync.conf block: its `key: value` pairs and nested blocks, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    pub values: Vec<(String, String)>,
    pub blocks: Vec<Block>,
}

impl Block {
    pub fn value(&self, k: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    pub fn blocks_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Block> {
        self.blocks.iter().filter(move |b| b.name == name)
    }
}

/// Parses corosync.conf into its top-level block; an unbalanced brace is an error.
pub fn corosync(text: &str) -> Result<Block, String> {
    let mut stack = vec![Block::default()];
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_suffix('{') {
            stack.push(Block {
                name: name.trim().to_string(),
                ..Block::default()
            });
        } else if line == "}" {
            let b = stack.pop().filter(|_| !stack.is_empty());
            match (b, stack.last_mut()) {
                (Some(b), Some(parent)) => parent.blocks.push(b),
                _ => return Err(format!("line {}: unbalanced }}", i + 1)),
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let top = stack.last_mut().expect("the stack keeps its root");
            top.values
                .push((k.trim().to_string(), v.trim().to_string()));
        } else {
            return Err(format!("line {}: {line:?} is not key: value", i + 1));
        }
    }
    if stack.len() != 1 {
        return Err("a block is not closed".into());
    }
    Ok(stack.pop().expect("root"))
}

/// One DRBD statement (`words;`) or section (`words { body }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub words: Vec<String>,
    pub body: Option<Vec<Stmt>>,
}

impl Stmt {
    pub fn keyword(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }

    /// The sections named `kw` directly inside this one.
    pub fn sections<'a>(&'a self, kw: &'a str) -> impl Iterator<Item = &'a Stmt> {
        self.body
            .iter()
            .flatten()
            .filter(move |s| s.keyword() == kw && s.body.is_some())
    }

    /// The value of the statement `kw value;` directly inside this section.
    pub fn option(&self, kw: &str) -> Option<&str> {
        self.body
            .iter()
            .flatten()
            .rev()
            .filter(|s| s.body.is_none() && s.keyword() == kw)
            .find_map(|s| s.words.get(1).map(String::as_str))
    }
}

fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '#' => while chars.next().is_some_and(|c| c != '\n') {},
            c if c.is_whitespace() => {
                chars.next();
            }
            '{' | '}' | ';' => {
                out.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => s.extend(chars.next()),
                        Some(c) => s.push(c),
                        None => return Err("an unterminated string".into()),
                    }
                }
                out.push(s);
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "{};#\"".contains(c) {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Parses DRBD configuration text into its top-level statements.
pub fn drbd(text: &str) -> Result<Vec<Stmt>, String> {
    fn body(t: &[String], i: &mut usize, nested: bool) -> Result<Vec<Stmt>, String> {
        let mut out = Vec::new();
        let mut words = Vec::new();
        while *i < t.len() {
            let tok = &t[*i];
            *i += 1;
            match tok.as_str() {
                ";" => out.push(Stmt {
                    words: std::mem::take(&mut words),
                    body: None,
                }),
                "{" => {
                    let inner = body(t, i, true)?;
                    out.push(Stmt {
                        words: std::mem::take(&mut words),
                        body: Some(inner),
                    });
                }
                "}" if nested => {
                    if !words.is_empty() {
                        return Err(format!("{:?} lacks its ;", words.join(" ")));
                    }
                    return Ok(out);
                }
                "}" => return Err("unbalanced }".into()),
                w => words.push(w.to_string()),
            }
        }
        if nested {
            return Err("a section is not closed".into());
        }
        if !words.is_empty() {
            return Err(format!("{:?} lacks its ;", words.join(" ")));
        }
        Ok(out)
    }
    let t = tokens(text)?;
    let mut i = 0;
    body(&t, &mut i, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corosync_blocks() {
        let b = corosync(
            "totem {\n version: 2\n}\nnodelist {\n node {\n  name: a # x\n }\n node {\n  name: b\n }\n}\nquorum {\n two_node: 1\n}\n",
        )
        .unwrap();
        assert_eq!(b.blocks_named("nodelist").next().unwrap().blocks.len(), 2);
        assert_eq!(
            b.blocks_named("quorum").next().unwrap().value("two_node"),
            Some("1")
        );
        assert!(corosync("a {\n").is_err());
        assert!(corosync("}\n").is_err());
    }

    #[test]
    fn drbd_sections() {
        let s = drbd("resource pg { # c\n disk { fencing resource-and-stonith; }\n handlers { fence-peer \"/x y\"; }\n on a { address 1.2.3.4:7788; }\n}\n").unwrap();
        assert_eq!(s[0].words, ["resource", "pg"]);
        let disk = s[0].sections("disk").next().unwrap();
        assert_eq!(disk.option("fencing"), Some("resource-and-stonith"));
        let h = s[0].sections("handlers").next().unwrap();
        assert_eq!(h.option("fence-peer"), Some("/x y"));
        assert!(drbd("resource pg { disk x }").is_err());
        assert!(drbd("resource pg {").is_err());
    }
}
