//! Hybrid retrieval over one snapshot: vector candidates (cosine: exact up to
//! [`EXACT_SEARCH_MAX`] records, usearch's HNSW above) and lexical candidates (BM25 with
//! English stemming, plus exact identifiers like `IAM-02`) are fused into one score.
//! Answer-library records whose past question is close enough to the query come first; ties
//! go to the lower record id, so results are a function of the snapshot's content. Does not
//! embed the query (see `KnowledgeBase::search`) or call an LLM.

use super::{Chunk, KbError, KnowledgeBase, LibraryAnswer, RecordKind, chunk, index_err};
use bm25::{Embedder, EmbedderBuilder, Language};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A past question whose embedding is at least this similar to the query is a library match:
/// it is listed before any document evidence.
pub const LIBRARY_THRESHOLD: f32 = 0.86;
/// Weight of the lexical score (BM25 relative to the query's best lexical match, 0..1).
const LEXICAL_WEIGHT: f32 = 0.12;
/// Added when the chunk contains an identifier the query names exactly ("IAM-02").
const IDENTIFIER_BONUS: f32 = 0.25;
/// Candidates taken from each retriever, as a multiple of k (at least `MIN_CANDIDATES`).
const CANDIDATE_FACTOR: usize = 4;
const MIN_CANDIDATES: usize = 40;

/// Up to this many records, vector search is exact: the query is compared with every stored
/// vector, so results depend only on the vectors, never on how the HNSW graph was built, and
/// nothing is missed. It is where exact search stops being as fast as HNSW: top-10 p50 on
/// 384-d f32 vectors, 2 cores under load (`cargo bench --bench kb`, see BENCHMARKS.md), exact
/// against HNSW: 5,000 records 0.27 / 0.57 ms, 10,000 0.57 / 0.78 ms, 20,000 1.4 / 1.4 ms,
/// 50,000 3.7 / 1.5 ms. The stored vectors are read into memory on the first search (30 MiB
/// at 20,000). Above it, HNSW over a graph built deterministically (`store::build_index`).
pub const EXACT_SEARCH_MAX: usize = 20_000;

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Fused score: cosine similarity + lexical weight + identifier bonus; sorts results.
    pub score: f32,
    /// Cosine similarity of the query and the record's embedded text.
    pub vector_score: f32,
    /// BM25 relative to the best lexical match of this query (0..1).
    pub lexical_score: f32,
    pub kind: RecordKind,
    pub source: String,
    pub heading: Option<String>,
    /// 1-based PDF page.
    pub page: Option<u32>,
    pub text: String,
    /// Chunk id in the snapshot.
    pub id: u64,
    /// For answer records: the past question and its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<LibraryAnswer>,
    /// An answer record at or above [`LIBRARY_THRESHOLD`]: it may answer the question directly.
    #[serde(default)]
    pub library_match: bool,
}

/// A second-stage scorer (a cross-encoder, say) over the fused candidates, before the cut to
/// k: it may rescore and reorder `hits`. rfpq ships none; set one with
/// [`KnowledgeBase::set_reranker`].
pub trait Rerank: Send + Sync {
    fn rerank(&self, query: &str, hits: &mut Vec<Hit>);
}

/// A query word in more than this share of all records is too common to find candidates
/// with (its IDF is near zero); it is dropped unless every query word is that common.
const COMMON_WORD_SHARE: f32 = 0.25;

/// BM25 over every record's lexical text, plus an index of identifiers. The `bm25` crate
/// tokenizes (English stemming, stop words) and weights term frequencies; the postings and
/// scoring are ours, because its `Scorer` rescans every record sharing any query word
/// (146 ms per query at 100k records, against about 1 ms here).
pub struct Lexical {
    embedder: Embedder,
    /// Token → (record id, BM25 term weight), in record order.
    postings: HashMap<u32, Vec<(u32, f32)>>,
    records: usize,
    identifiers: HashMap<String, Vec<u64>>,
}

impl Lexical {
    pub fn build(chunks: &[Chunk]) -> Self {
        let texts: Vec<String> = chunks.iter().map(chunk::lexical_text).collect();
        let corpus: Vec<&str> = texts.iter().map(String::as_str).collect();
        let embedder: Embedder =
            EmbedderBuilder::with_fit_to_corpus(Language::English, &corpus).build();
        let mut postings: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        let mut identifiers: HashMap<String, Vec<u64>> = HashMap::new();
        for (c, text) in chunks.iter().zip(&texts) {
            let mut seen: HashSet<u32> = HashSet::new();
            for t in embedder.embed(text).iter() {
                if seen.insert(t.index) {
                    postings
                        .entry(t.index)
                        .or_default()
                        .push((c.id as u32, t.value));
                }
            }
            for id in identifiers_in(text) {
                let ids = identifiers.entry(id).or_default();
                if ids.last() != Some(&c.id) {
                    ids.push(c.id);
                }
            }
        }
        Self {
            embedder,
            postings,
            records: chunks.len(),
            identifiers,
        }
    }

    /// Records matching the query's words, best first, with their BM25 scores.
    fn top(&self, query: &str, n: usize) -> Vec<(u64, f32)> {
        let mut words: Vec<(u32, &Vec<(u32, f32)>)> = Vec::new();
        for t in self.embedder.embed(query).iter() {
            if let Some(list) = self.postings.get(&t.index)
                && !words.iter().any(|(i, _)| *i == t.index)
            {
                words.push((t.index, list));
            }
        }
        let common = (self.records as f32 * COMMON_WORD_SHARE) as usize;
        if words.iter().any(|(_, list)| list.len() <= common) {
            words.retain(|(_, list)| list.len() <= common);
        }
        let total = self.records as f32;
        let mut scores = vec![0f32; self.records];
        let mut touched: Vec<u32> = Vec::new();
        for (_, list) in words {
            let df = list.len() as f32;
            let idf = (1.0 + (total - df + 0.5) / (df + 0.5)).ln();
            for (doc, weight) in list {
                let s = &mut scores[*doc as usize];
                if *s == 0.0 {
                    touched.push(*doc);
                }
                *s += idf * weight;
            }
        }
        let mut found: Vec<(u64, f32)> = touched
            .into_iter()
            .map(|d| (d as u64, scores[d as usize]))
            .collect();
        if found.len() > n && n > 0 {
            found.select_nth_unstable_by(n - 1, by_score);
            found.truncate(n);
        }
        found.sort_by(by_score);
        found
    }
}

/// Identifier-like tokens ("IAM-02", "CC6.1", "A.9.2.3"): letters and digits mixed, upper-cased.
pub fn identifiers_in(text: &str) -> HashSet<String> {
    text.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                ',' | ';' | ':' | '(' | ')' | '[' | ']' | '"' | '\'' | '/' | '|'
            )
    })
    .map(|t| t.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
    .filter(|t| {
        (3..=20).contains(&t.len())
            && t.chars().any(|c| c.is_ascii_digit())
            && t.chars().any(|c| c.is_ascii_alphabetic())
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            && t.starts_with(|c: char| c.is_ascii_alphabetic())
    })
    .map(str::to_ascii_uppercase)
    .collect()
}

/// Every stored vector in one block, with its norm: what exact search scans.
pub struct Exact {
    dims: usize,
    data: Vec<f32>,
    norms: Vec<f32>,
}

impl Exact {
    /// Reads records `0..n`'s vectors (dequantized) out of `index`.
    pub(super) fn load(index: &usearch::Index, n: usize, dims: usize) -> Result<Self, KbError> {
        let mut data = vec![0f32; n * dims];
        for (id, v) in data.chunks_exact_mut(dims.max(1)).enumerate() {
            let got = index.get(id as u64, v).map_err(index_err)?;
            if got == 0 {
                return Err(index_err(format!("record {id} has no vector in the index")));
            }
        }
        let norms = data
            .chunks_exact(dims.max(1))
            .map(|v| dot(v, v).sqrt())
            .collect();
        Ok(Self { dims, data, norms })
    }

    /// Cosine of `query` (whose norm is `query_norm`) and record `id`.
    fn cosine(&self, query: &[f32], query_norm: f32, id: usize) -> f32 {
        let norm = self.norms[id];
        if norm == 0.0 || query_norm == 0.0 {
            return 0.0;
        }
        dot(query, &self.data[id * self.dims..(id + 1) * self.dims]) / (query_norm * norm)
    }
}

/// Best first by score, then by id (lower first): a total order, so equal scores always come
/// out the same way.
fn by_score(a: &(u64, f32), b: &(u64, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Cosine similarity of two vectors (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (dot(a, a), dot(b, b));
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot(a, b) / (na.sqrt() * nb.sqrt())
    }
}

/// The dot product over the common length, summed in eight lanes so the compiler vectorizes
/// it (one running sum is a serial chain it may not reorder).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let tail: f32 = a
        .remainder()
        .iter()
        .zip(b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut lanes = [0f32; 8];
    for (x, y) in a.zip(b) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

impl KnowledgeBase {
    /// Installs a second-stage reranker for [`Self::search_embedded`].
    pub fn set_reranker(&mut self, reranker: std::sync::Arc<dyn Rerank>) {
        self.reranker = Some(reranker);
    }

    fn lexical(&self) -> &Lexical {
        self.lexical.get_or_init(|| Lexical::build(&self.chunks))
    }

    fn hit(&self, id: u64, vector_score: f32, lexical_score: f32, bonus: f32) -> Option<Hit> {
        let c = self.chunks.get(id as usize)?;
        let library_match = c.kind == RecordKind::Answer && vector_score >= LIBRARY_THRESHOLD;
        Some(Hit {
            score: vector_score + LEXICAL_WEIGHT * lexical_score + bonus,
            vector_score,
            lexical_score,
            kind: c.kind,
            source: c.source.clone(),
            heading: c.heading.clone(),
            page: c.page,
            text: c.text.clone(),
            id,
            answer: c.answer.clone(),
            library_match,
        })
    }

    /// Overrides [`EXACT_SEARCH_MAX`] for this KB: 0 always uses HNSW, `usize::MAX` always
    /// searches exactly (benchmarks and tests compare the two).
    pub fn set_exact_search_max(&mut self, n: usize) {
        self.exact_max = n;
    }

    /// Whether vector search over this KB is exact (see [`EXACT_SEARCH_MAX`]).
    pub fn exact_search(&self) -> bool {
        self.chunks.len() <= self.exact_max
    }

    /// The stored vectors for exact search, read from the index on first use.
    fn exact(&self) -> Result<&Exact, KbError> {
        self.exact
            .get_or_init(|| {
                Exact::load(&self.index, self.chunks.len(), self.manifest.dimensions)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| KbError::Index(e.clone()))
    }

    fn check_dims(&self, query: &[f32]) -> Result<(), KbError> {
        if query.len() != self.manifest.dimensions {
            return Err(index_err(format!(
                "the query has {} dimensions, the knowledge base {}",
                query.len(),
                self.manifest.dimensions
            )));
        }
        Ok(())
    }

    /// Up to `n` records nearest to `query` by cosine, among those `keep` accepts (all when
    /// `None`): (id, cosine), best first, ties by id. Exact up to [`EXACT_SEARCH_MAX`]
    /// records, else HNSW.
    fn nearest(
        &self,
        query: &[f32],
        n: usize,
        keep: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>, KbError> {
        self.check_dims(query)?;
        if n == 0 || self.chunks.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: Vec<(u64, f32)> = if self.exact_search() {
            let exact = self.exact()?;
            let query_norm = dot(query, query).sqrt();
            (0..self.chunks.len() as u64)
                .filter(|id| keep.is_none_or(|keep| keep(*id)))
                .map(|id| (id, exact.cosine(query, query_norm, id as usize)))
                .collect()
        } else {
            let matches = match keep {
                Some(keep) => self.index.filtered_search(query, n, keep),
                None => self.index.search(query, n),
            }
            .map_err(index_err)?;
            matches
                .keys
                .iter()
                .zip(&matches.distances)
                .map(|(key, d)| (*key, 1.0 - d))
                .collect()
        };
        if found.len() > n {
            found.select_nth_unstable_by(n - 1, by_score);
            found.truncate(n);
        }
        found.sort_by(by_score);
        Ok(found)
    }

    /// Cosine of `query` and record `id`'s stored vector.
    fn cosine_to(&self, query: &[f32], id: u64) -> Option<f32> {
        if (id as usize) >= self.chunks.len() {
            return None;
        }
        if self.exact_search() {
            let exact = self.exact().ok()?;
            Some(exact.cosine(query, dot(query, query).sqrt(), id as usize))
        } else {
            Some(cosine(query, &self.vector(id)?))
        }
    }

    /// Nearest records to an embedded query by cosine only, best first (no lexical part).
    pub fn search_vector(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, KbError> {
        Ok(self
            .nearest(query, k, None)?
            .into_iter()
            .filter_map(|(id, v)| self.hit(id, v, 0.0, 0.0))
            .collect())
    }

    /// The best answer-library record for an embedded query, if its past question is at least
    /// `threshold` similar (cosine).
    pub fn library_match(&self, query: &[f32], threshold: f32) -> Result<Option<Hit>, KbError> {
        if self.manifest.answers == 0 {
            return Ok(None);
        }
        let chunks = &self.chunks;
        let is_answer = |id: u64| {
            chunks
                .get(id as usize)
                .is_some_and(|c| c.kind == RecordKind::Answer)
        };
        let best = self.nearest(query, 1, Some(&is_answer))?;
        Ok(best
            .into_iter()
            .find(|(_, v)| *v >= threshold)
            .and_then(|(id, v)| self.hit(id, v, 0.0, 0.0)))
    }

    /// Hybrid search: vector and lexical candidates fused, library matches first, then by
    /// fused score; `query` is the text `vector` embeds.
    pub fn search_embedded(
        &self,
        query: &str,
        vector: &[f32],
        k: usize,
    ) -> Result<Vec<Hit>, KbError> {
        if k == 0 || self.chunks.is_empty() {
            return Ok(Vec::new());
        }
        let n = (k * CANDIDATE_FACTOR).max(MIN_CANDIDATES);
        let cos: HashMap<u64, f32> = self.nearest(vector, n, None)?.into_iter().collect();
        let lexical = self.lexical();
        let lex = lexical.top(query, n);
        let best_lex = lex.first().map_or(0.0, |(_, s)| *s);
        let lex: HashMap<u64, f32> = lex
            .into_iter()
            .map(|(id, s)| (id, if best_lex > 0.0 { s / best_lex } else { 0.0 }))
            .collect();
        let mut named: HashSet<u64> = HashSet::new();
        for id in identifiers_in(query) {
            if let Some(ids) = lexical.identifiers.get(&id) {
                named.extend(ids.iter().take(n));
            }
        }
        let candidates: HashSet<u64> = cos
            .keys()
            .chain(lex.keys())
            .chain(named.iter())
            .copied()
            .collect();
        let mut hits: Vec<Hit> = candidates
            .into_iter()
            .filter_map(|id| {
                let v = match cos.get(&id) {
                    Some(v) => *v,
                    None => self.cosine_to(vector, id)?,
                };
                let bonus = if named.contains(&id) {
                    IDENTIFIER_BONUS
                } else {
                    0.0
                };
                self.hit(id, v, lex.get(&id).copied().unwrap_or(0.0), bonus)
            })
            .collect();
        hits.sort_by(|a, b| {
            b.library_match
                .cmp(&a.library_match)
                .then(b.score.total_cmp(&a.score))
                .then(a.id.cmp(&b.id))
        });
        if let Some(reranker) = &self.reranker {
            hits.truncate(n);
            reranker.rerank(query, &mut hits);
        }
        hits.truncate(k);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_found_and_normalized() {
        let ids = identifiers_in("Per IAM-02 and cc6.1 (see A.9.2.3); not 2024 nor MFA.");
        let mut v: Vec<_> = ids.into_iter().collect();
        v.sort();
        assert_eq!(v, vec!["A.9.2.3", "CC6.1", "IAM-02"]);
    }

    fn doc(id: u64, text: &str) -> Chunk {
        Chunk {
            id,
            kind: RecordKind::Doc,
            source: format!("{id}.md"),
            heading: None,
            page: None,
            start: 0,
            end: text.len(),
            text: text.to_string(),
            answer: None,
        }
    }

    #[test]
    fn bm25_ranks_rare_words_and_stems() {
        let mut chunks: Vec<Chunk> = (0..40)
            .map(|i| {
                doc(
                    i,
                    &format!("Security policy section {i} about data handling."),
                )
            })
            .collect();
        chunks.push(doc(40, "Backups are encrypted and restored quarterly."));
        chunks.push(doc(41, "Encryption keys rotate; security data policy."));
        let lex = Lexical::build(&chunks);
        let top = lex.top("Are backup copies encrypted?", 5);
        assert_eq!(top[0].0, 40, "{top:?}");
        assert!(
            top.iter().any(|(id, _)| *id == 41),
            "stemmed 'encrypt' matches: {top:?}"
        );
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
        // Only common words: they still find records.
        assert!(!lex.top("security policy", 3).is_empty());
        assert!(lex.top("zebra", 3).is_empty());
    }

    /// A snapshot of `vectors` (records `0..n`, documents) opened from `dir`.
    fn kb_of(dir: &std::path::Path, vectors: &[Vec<f32>]) -> KnowledgeBase {
        use crate::kb::{Quantization, store};
        let dims = vectors[0].len();
        let mut m = store::tests::manifest(vectors.len(), dims, Quantization::F32);
        let chunks = store::tests::chunks(vectors.len());
        store::write_snapshot(dir, &mut m, &chunks, vectors).unwrap();
        KnowledgeBase::open(dir).unwrap()
    }

    #[test]
    fn exact_search_is_brute_force_and_breaks_ties_by_id() {
        let tmp = tempfile::tempdir().unwrap();
        let mut v = crate::kb::store::tests::vectors(2_000, 32, 11);
        // Two records with the same vector: equal scores, the lower id first.
        v[1_500] = v[10].clone();
        let mut kb = kb_of(tmp.path(), &v);
        assert!(kb.exact_search());
        for q in [10, 77, 1_999] {
            let query = &v[q];
            let mut expected: Vec<(u64, f32)> = v
                .iter()
                .enumerate()
                .map(|(id, x)| (id as u64, cosine(query, x)))
                .collect();
            expected.sort_by(by_score);
            let hits = kb.search_vector(query, 10).unwrap();
            let ids: Vec<u64> = hits.iter().map(|h| h.id).collect();
            let want: Vec<u64> = expected[..10].iter().map(|(id, _)| *id).collect();
            assert_eq!(ids, want, "query {q}");
            for (h, (_, s)) in hits.iter().zip(&expected) {
                assert!((h.vector_score - s).abs() < 1e-5);
            }
        }
        let twins: Vec<u64> = kb
            .search_vector(&v[1_500], 2)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(twins, vec![10, 1_500]);
        // HNSW finds the same nearest record here; results come in the same order.
        kb.set_exact_search_max(0);
        assert!(!kb.exact_search());
        let approx = kb.search_vector(&v[77], 10).unwrap();
        assert_eq!(approx[0].id, 77);
        assert!(
            approx
                .windows(2)
                .all(|w| w[0].vector_score >= w[1].vector_score)
        );
    }

    #[test]
    fn a_query_of_the_wrong_size_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let v = crate::kb::store::tests::vectors(20, 16, 5);
        let kb = kb_of(tmp.path(), &v);
        assert!(matches!(
            kb.search_vector(&[0.5; 8], 3),
            Err(KbError::Index(_))
        ));
    }

    #[test]
    fn cosine_of_parallel_vectors_is_one() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
