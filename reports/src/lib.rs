//! Reports from simulation runs (Markdown, HTML, JSON, JUnit). It arrives with the scenario and
//! report issue; the crate exists now so the workspace has its final shape.
