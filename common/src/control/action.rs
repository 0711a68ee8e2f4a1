//! The [`Action`] trait, and the macro that turns the one list of actions (in `control.rs`) into
//! [`RequestBody`](super::RequestBody), the trait impls, [`ACTIONS`](super::ACTIONS) and the
//! TypeScript `Actions` map.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RequestBody;

/// One control action: its arguments (`Self`), its wire name and the type of its result. A client
/// sends `Self` and reads back `Output`; the server's handler must produce an `Output`, so both
/// ends agree by construction.
pub trait Action: Serialize + DeserializeOwned + Into<RequestBody> {
    /// The `action` name on the wire.
    const NAME: &'static str;
    /// What a successful reply carries as `result`.
    type Output: Serialize + DeserializeOwned;
}

/// `control_actions! { "wireName" => RequestStruct -> Output, ... }` lists every action once and
/// generates everything that must agree with that list.
macro_rules! control_actions {
    ($( $name:literal => $request:ident -> $output:ty ),* $(,)?) => {
        /// A request's arguments, tagged by `action` (each variant holds the action's struct).
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "action")]
        pub enum RequestBody {
            $( #[serde(rename = $name)] $request($request), )*
        }

        impl RequestBody {
            /// The `action` name this request travels under.
            pub fn action(&self) -> &'static str {
                match self {
                    $( RequestBody::$request(_) => $name, )*
                }
            }
        }

        /// Every action name the server knows, so that "unknown action" can be told from "bad
        /// arguments".
        pub const ACTIONS: &[&str] = &[$( $name ),*];

        $(
            impl $crate::control::Action for $request {
                const NAME: &'static str = $name;
                type Output = $output;
            }

            impl From<$request> for RequestBody {
                fn from(request: $request) -> Self {
                    RequestBody::$request(request)
                }
            }
        )*

        /// The TypeScript `Actions` map: `{ [action]: { args: …; result: … } }`, and every request
        /// type's declaration.
        #[cfg(test)]
        pub(crate) fn typescript_actions(cfg: &ts_rs::Config) -> (Vec<String>, String) {
            use ts_rs::TS;
            let declarations = vec![$( <$request as TS>::decl(cfg) ),*];
            let mut map = String::from("export interface Actions {\n");
            $(
                map.push_str(&format!(
                    "  {}: {{ args: {}; result: {} }};\n",
                    $name,
                    <$request as TS>::name(cfg),
                    <$output as TS>::name(cfg),
                ));
            )*
            map.push_str("}\n");
            (declarations, map)
        }
    };
}

pub(crate) use control_actions;
