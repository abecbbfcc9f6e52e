//! Container names: docker's validation rule and random `adjective_surname` names for
//! containers created without one.

/// Docker's `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn valid(name: &str) -> bool {
    let n = name.strip_prefix('/').unwrap_or(name);
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

const LEFT: &[&str] = &[
    "admiring",
    "adoring",
    "affectionate",
    "amazing",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "charming",
    "clever",
    "cool",
    "compassionate",
    "competent",
    "confident",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elastic",
    "elegant",
    "epic",
    "exciting",
    "fervent",
    "festive",
    "focused",
    "friendly",
    "frosty",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "happy",
    "hopeful",
    "hungry",
    "infallible",
    "inspiring",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "mystifying",
    "nice",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pedantic",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "relaxed",
    "reverent",
    "romantic",
    "sad",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "sweet",
    "tender",
    "thirsty",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "wizardly",
    "wonderful",
    "youthful",
    "zealous",
];

const RIGHT: &[&str] = &[
    "agnesi",
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bell",
    "bhabha",
    "black",
    "blackwell",
    "bohr",
    "booth",
    "borg",
    "bose",
    "brahmagupta",
    "brown",
    "buck",
    "burnell",
    "cannon",
    "carson",
    "cerf",
    "chandrasekhar",
    "clarke",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hertz",
    "hodgkin",
    "hopper",
    "hypatia",
    "jang",
    "jennings",
    "johnson",
    "kalam",
    "kepler",
    "knuth",
    "lamport",
    "leakey",
    "lovelace",
    "lumiere",
    "mahavira",
    "mayer",
    "mcclintock",
    "meitner",
    "mendel",
    "morse",
    "newton",
    "nobel",
    "noether",
    "pasteur",
    "perlman",
    "pike",
    "poincare",
    "ritchie",
    "shannon",
    "shockley",
    "sinoussi",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

/// A random `adjective_surname`; `retry` > 0 appends a digit like docker.
pub fn random(seed: u64, retry: u32) -> String {
    let l = LEFT[(seed % LEFT.len() as u64) as usize];
    let r = RIGHT[((seed >> 16) % RIGHT.len() as u64) as usize];
    if retry == 0 {
        format!("{l}_{r}")
    } else {
        format!("{l}_{r}{}", (seed >> 32) % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid("web"));
        assert!(valid("/web_1.a-b"));
        assert!(!valid("a"));
        assert!(!valid("-web"));
        assert!(!valid("we b"));
        assert!(!valid(""));
        let n = random(0x1234_5678_9abc, 0);
        assert!(valid(&n) && n.contains('_'), "{n}");
    }
}
