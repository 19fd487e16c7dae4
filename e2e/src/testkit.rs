//! Small helpers the story tests share: start a world with its events captured, unwrap with
//! the whole error chain, and ask what of ours is left.

use crate::narrate::capture;
use crate::world::{Controller, Settings, World};

/// Starts a world named `name` and captures the controller's log events of this test into
/// its story. Keep the guard for the test's length.
///
/// # Panics
/// When the world cannot start (moto not set up, say): the test cannot run.
pub async fn world(name: &str, settings: Settings) -> (World, tracing::subscriber::DefaultGuard) {
    let world = World::start(name, settings)
        .await
        .unwrap_or_else(|e| panic!("cannot start the world: {e:#}"));
    let guard = capture(&world.events);
    (world, guard)
}

/// The value, or a panic with the whole error chain (and the story, where the error has it).
///
/// # Panics
/// On an error.
pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e:#}"))
}

/// The names of our runners still registered in Gitea.
#[must_use]
pub fn our_runners(world: &World) -> Vec<String> {
    let prefix = model::RunnerName::prefix(&world.cluster);
    world
        .sim
        .runners()
        .into_iter()
        .filter(|r| r.name.starts_with(&prefix))
        .map(|r| r.name)
        .collect()
}

/// Ends a story that expects no trouble with the machines: the booter met no problem, the
/// controller stops cleanly, and the world shuts down.
///
/// # Panics
/// When the booter met a problem or the controller does not stop cleanly.
pub async fn end_cleanly(world: World, ctl: Controller) {
    let errors = world.booter.errors();
    assert!(errors.is_empty(), "the booter met problems: {errors:?}");
    ok(ctl.stop().await);
    world.shutdown().await;
}
