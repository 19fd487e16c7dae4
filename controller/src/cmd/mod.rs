//! One module per subcommand.

pub mod config;
pub mod doctor;
pub mod output;
pub mod plan;
pub mod reconcile;
pub mod render_user_data;
pub mod runs;
pub mod serve;
pub mod sim;
pub mod status;
pub mod store;
pub mod workflows;
