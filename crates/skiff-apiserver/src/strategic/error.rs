//! Why a strategic merge patch could not be applied.

/// Why a strategic merge patch could not be applied. Messages follow upstream's wording
/// (`k8s.io/apimachinery/pkg/util/mergepatch`) so clients see familiar text; `path` fields
/// name the position in the object (`.spec.template.spec.containers`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    /// The kind has no strategic-merge metadata (custom resources, unknown kinds).
    #[error("strategic merge patch format is not supported")]
    Unsupported,
    /// The original object or the patch is not a JSON object.
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// A `$patch` directive with an unknown value.
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType {
        /// The directive's value.
        directive: String,
        /// The map holding it, as JSON.
        map: String,
    },
    /// `$patch: merge` on a list element.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// An element of a merging list lacks the list's merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The element, as JSON.
        map: String,
        /// The merge key.
        key: String,
    },
    /// A list of objects with `merge` strategy has no merge key (cannot happen for well-formed
    /// schema data, kept for fidelity).
    #[error("cannot merge lists without merge key for {path}")]
    NoMergeKeyForList {
        /// The list's position.
        path: String,
    },
    /// A `$deleteFromPrimitiveList` key without `/<field>`, or a value that is not a list.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// A malformed `$retainKeys` directive, or a patch field missing from it.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// A malformed `$setElementOrder` directive.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// The patch list's order contradicts its `$setElementOrder` list.
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    SetElementOrderMismatch {
        /// The patch list, as JSON.
        patch: String,
        /// The order list, as JSON.
        order: String,
    },
    /// A list whose elements are lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A merging list whose elements (original and patch together) differ in type.
    #[error("list element types are not identical at {path}")]
    MixedElementTypes {
        /// The list's position.
        path: String,
    },
    /// A value has the wrong JSON type for a directive (e.g. a `$setElementOrder` list that is
    /// not a list).
    #[error("expected a {expected}, but received a {actual} at {path}")]
    BadArgType {
        /// The expected JSON type.
        expected: &'static str,
        /// The JSON type found.
        actual: &'static str,
        /// The value's position.
        path: String,
    },
    /// The embedded schema table is malformed (a build defect, caught by the unit tests).
    #[error("invalid built-in patch schema: {0}")]
    Schema(String),
}

impl SmpError {
    /// The HTTP status the API server answers with: 400 for malformed requests and directives
    /// (as upstream's `interpretStrategicMergePatchError`), 415 for unsupported kinds, 500 for a
    /// broken schema table, 422 for patches that are well-formed JSON but cannot be applied.
    pub fn http_status(&self) -> u16 {
        match self {
            SmpError::Unsupported => 415,
            SmpError::BadJsonDoc
            | SmpError::BadPrimitiveList
            | SmpError::BadRetainKeys
            | SmpError::BadSetElementOrder
            | SmpError::BadPatchType { .. } => 400,
            SmpError::Schema(_) => 500,
            _ => 422,
        }
    }
}
