//! The fleet port's contract (`tests/contract/fleet.rs`) on the tests' `FakeFleet`;
//! `tests/aws.rs` runs the same clauses on the EC2 fleet over moto, so the fake the other
//! tests rely on cannot drift from EC2.

#[path = "contract/fleet.rs"]
#[macro_use]
mod fleet_contract;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use controller::fleet::fake::FakeFleet;
use controller::fleet::Fleet;
use fleet_contract::FleetRig;
use model::config::{Market, PoolConfig};
use model::observed::{Instance, InstanceState};
use model::{tags, InstanceId, Lifecycle, Timestamp};

struct FakeRig {
    fleet: FakeFleet,
    foreign: AtomicU64,
}

fn rig() -> FakeRig {
    FakeRig {
        fleet: FakeFleet::new("prod", Timestamp::from_millis(1_764_000_000_000)),
        foreign: AtomicU64::new(0),
    }
}

#[async_trait]
impl FleetRig for FakeRig {
    fn fleet(&self) -> &dyn Fleet {
        &self.fleet
    }

    fn cluster(&self) -> &str {
        "prod"
    }

    fn pool(&self) -> PoolConfig {
        PoolConfig {
            instance_types: vec!["c7a.large".into(), "m7a.large".into()],
            subnets: vec!["subnet-a".into()],
            security_groups: vec!["sg-1".into()],
            ami: "ami-1".into(),
            instance_profile: None,
            market: Market::Spot,
            max_instances: 50,
            volume_size_gb: 40,
            extra_labels: vec![],
            max_lifetime: None,
            warm: None,
            hourly_price: None,
        }
    }

    async fn start_foreign(&self, cluster: Option<&str>) -> InstanceId {
        let n = self.foreign.fetch_add(1, Ordering::SeqCst);
        let id = InstanceId::new(format!("i-foreign{n}"));
        let mut tags = BTreeMap::new();
        if let Some(c) = cluster {
            tags.insert(tags::CLUSTER.to_owned(), c.to_owned());
        }
        self.fleet.insert(Instance {
            id: id.clone(),
            state: InstanceState::Running,
            state_reason: None,
            launched_at: self.fleet.now(),
            lifecycle: Lifecycle::OnDemand,
            instance_type: "t3.micro".into(),
            zone: "us-east-1a".into(),
            tags: tags.into(),
        });
        id
    }
}

fleet_contract!(rig());
