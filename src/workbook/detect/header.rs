//! Gives a header cell its role (ID, section, question, answer, excluded) from its words in
//! several languages; does not pick the header row or look below it.

/// Header cells longer than this are content, not headers.
const MAX_HEADER_LEN: usize = 80;

/// What a header cell says its column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Id,
    Section,
    /// Question text, with a strength (5 = "Question", 1 = "Description").
    Question(u8),
    /// An answer column (choice or free text).
    Answer,
    /// A known non-answer column (guidance, analyst notes, severity, links…).
    Excluded,
    Unknown,
}

pub(super) fn normalise(h: &str) -> String {
    let lower = h.to_lowercase();
    let cleaned: String = lower
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '#' || c == '/' {
                c
            } else {
                ' '
            }
        })
        .collect();
    format!(
        " {} ",
        cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

fn has_any(n: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| n.contains(&format!(" {p} ")))
}

fn has_any_cjk(n: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| n.contains(p))
}

pub(super) fn classify(header: &str) -> Role {
    let n = normalise(header);
    let word_count = n.split_whitespace().count();
    // A question is content, not a header ("Are access controls … ?").
    if word_count == 0 || header.chars().count() > MAX_HEADER_LEN || header.trim().ends_with('?') {
        return Role::Unknown;
    }
    if has_any(
        &n,
        &[
            "analyst",
            "guidance",
            "reviewer",
            "assessor",
            "internal use",
            "score",
            "scoring",
            "weight",
            "more info",
            "training",
            "graph query",
            "guid",
            "severity",
            "priority",
            "risk level",
            "url",
            "link",
            "links",
            "mapping",
            "example",
            "examples",
            "instructions",
            "evaluation",
        ],
    ) {
        return Role::Excluded;
    }
    if word_count <= 3
        && !has_any(&n, &["yes no", "yes/no", "y/n"])
        && has_any(
            &n,
            &[
                "id",
                "ref",
                "#",
                "q#",
                "nr",
                "no",
                "num",
                "number",
                "identifier",
                "ref #",
                "ref no",
            ],
        )
    {
        return Role::Id;
    }
    if has_any(
        &n,
        &[
            "area",
            "domain",
            "section",
            "category",
            "topic",
            "chapter",
            "family",
            "theme",
            "domaine",
            "catégorie",
            "thème",
            "bereich",
            "kategorie",
            "thema",
            "dominio",
            "categoría",
            "categoria",
        ],
    ) || has_any_cjk(&n, &["分類", "区分", "領域", "類別"])
    {
        return Role::Section;
    }
    if has_any(
        &n,
        &[
            "question",
            "questions",
            "query",
            "checklist item",
            "requirement",
            "requirements",
            "statement",
            "criteria",
            "criterion",
            "control description",
            "control specification",
            "exigence",
            "exigences",
            "frage",
            "fragen",
            "anforderung",
            "pregunta",
            "preguntas",
            "requisito",
            "domanda",
            "domande",
            "vraag",
            "vragen",
        ],
    ) || has_any_cjk(&n, &["質問", "設問", "問題", "要件"])
    {
        let strong = has_any(
            &n,
            &[
                "question",
                "questions",
                "query",
                "frage",
                "fragen",
                "pregunta",
                "preguntas",
                "domanda",
                "domande",
                "vraag",
                "vragen",
            ],
        ) || has_any_cjk(&n, &["質問", "設問", "問題"]);
        return Role::Question(if strong { 5 } else { 4 });
    }
    if has_any(
        &n,
        &[
            "answer",
            "answers",
            "response",
            "responses",
            "status",
            "yes/no",
            "y/n",
            "yes no",
            "compliance",
            "compliant",
            "applicable",
            "comment",
            "comments",
            "explanation",
            "explain",
            "notes",
            "note",
            "additional information",
            "additional info",
            "remarks",
            "justification",
            "evidence",
            "details",
            "implementation",
            "supporting information",
            "responsibilities",
            "responsibility",
            "third party name",
            "rationale",
            // French, German, Spanish, Italian, Portuguese, Dutch.
            "réponse",
            "réponses",
            "reponse",
            "statut",
            "commentaire",
            "commentaires",
            "remarque",
            "remarques",
            "explication",
            "précisions",
            "antwort",
            "antworten",
            "kommentar",
            "kommentare",
            "bemerkung",
            "bemerkungen",
            "erläuterung",
            "respuesta",
            "respuestas",
            "comentario",
            "comentarios",
            "observaciones",
            "risposta",
            "risposte",
            "commento",
            "commenti",
            "resposta",
            "respostas",
            "comentário",
            "observações",
            "antwoord",
            "opmerking",
            "opmerkingen",
            "toelichting",
        ],
    ) || has_any_cjk(
        &n,
        &[
            "回答",
            "答え",
            "状態",
            "ステータス",
            "状況",
            "備考",
            "コメント",
            "説明",
            "回覆",
            "答覆",
            "狀態",
            "評論",
            "註解",
            "備註",
            "說明",
        ],
    ) {
        return Role::Answer;
    }
    if has_any(&n, &["control", "controls", "item", "items", "check"]) {
        return Role::Question(3);
    }
    if has_any(&n, &["description", "text"]) || has_any_cjk(&n, &["項目", "内容", "內容"]) {
        return Role::Question(1);
    }
    Role::Unknown
}

pub(super) fn has_word(text: &str, words: &[&str]) -> bool {
    has_any(&normalise(text), words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roles() {
        assert_eq!(classify("Checklist item"), Role::Question(4));
        assert_eq!(classify("Question"), Role::Question(5));
        assert_eq!(classify("Description (optional)"), Role::Question(1));
        assert_eq!(classify("Status"), Role::Answer);
        assert_eq!(classify("Comment"), Role::Answer);
        assert_eq!(classify("Vendor Answers"), Role::Answer);
        assert_eq!(classify("Additional Information"), Role::Answer);
        assert_eq!(classify("Analyst Notes"), Role::Excluded);
        assert_eq!(classify("Main Area"), Role::Section);
        assert_eq!(classify("Question ID"), Role::Id);
        assert_eq!(classify("GUID"), Role::Excluded);
        assert_eq!(classify("More info"), Role::Excluded);
        assert_eq!(classify("Severity"), Role::Excluded);
        assert_eq!(classify("Réponse"), Role::Answer);
        assert_eq!(classify("Commentaires"), Role::Answer);
        assert_eq!(classify("Frage"), Role::Question(5));
        assert_eq!(classify("Antwort"), Role::Answer);
        assert_eq!(classify("Comentarios"), Role::Answer);
        assert_eq!(classify("Domaine"), Role::Section);
    }
}
