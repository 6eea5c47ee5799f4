################################################################################
#
# varta
#
################################################################################

# Keep equal to [workspace.package] version in Cargo.toml (ci/release-tarball.sh --check).
VARTA_VERSION = 0.1.0
# The release tarball made by ci/release-tarball.sh: git archive of the release commit plus
# VENDOR/ (cargo vendor --locked) and .cargo/config.toml. Buildroot's cargo download
# post-process leaves a tarball that already has VENDOR/ as it is, so varta.hash holds the
# hash of exactly this file. PLACEHOLDER site: the project publishes no releases yet. Point
# it at the real location, or put the file into $(BR2_DL_DIR)/varta/ (or a
# BR2_PRIMARY_SITE mirror) by hand.
VARTA_SITE = https://example.invalid/varta/releases/download/v$(VARTA_VERSION)
VARTA_SOURCE = varta-$(VARTA_VERSION).tar.gz
VARTA_LICENSE = MIT or Apache-2.0
# The tree has no license file yet (the license is stated in Cargo.toml and README.md).
# When LICENSE-MIT and LICENSE-APACHE are added, list them here and rerun
# ci/release-tarball.sh --write-hash, which hashes them into varta.hash.
VARTA_LICENSE_FILES =

# The init and device files shared with the other build integrations live in boards/init,
# the sibling of this external tree (boards/buildroot); they are taken from this checkout,
# not from the release tarball.
VARTA_INIT_DIR = $(BR2_EXTERNAL_VARTA_PATH)/../init

# pkg-cargo.mk runs `cargo build` in the source directory with
# CARGO_BUILD_TARGET=$(RUSTC_TARGET_NAME), --release unless BR2_ENABLE_DEBUG, and no
# CARGO_TARGET_DIR: the binaries land in the workspace's target/<triple>/<profile>/.
VARTA_BIN_DIR = $(VARTA_SRCDIR)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)

VARTA_CARGO_WATCHD_OPTS = -p embedded --bin varta-watchd
VARTA_CARGO_WATCH_OPTS = -p host --bin varta-watch --bin varta-beat

# varta-watch needs host's default feature `metrics` (the Prometheus and textfile
# exporters); varta-watchd uses host without it. One cargo run selecting both packages
# would unify the features and link the exporters into varta-watchd, so when both are
# selected the infrastructure builds varta-watchd and a post-build hook runs a second
# cargo build for varta-watch and varta-beat.
ifeq ($(BR2_PACKAGE_VARTA_WATCHD),y)
VARTA_CARGO_BUILD_OPTS = $(VARTA_CARGO_WATCHD_OPTS)
VARTA_BINS += varta-watchd
ifeq ($(BR2_PACKAGE_VARTA_WATCH),y)
VARTA_POST_BUILD_HOOKS += VARTA_BUILD_WATCH
endif
else ifeq ($(BR2_PACKAGE_VARTA_WATCH),y)
VARTA_CARGO_BUILD_OPTS = $(VARTA_CARGO_WATCH_OPTS)
endif
ifeq ($(BR2_PACKAGE_VARTA_WATCH),y)
VARTA_BINS += varta-watch varta-beat
endif

# The same command as the infrastructure's build step (package/pkg-cargo.mk), for the
# second set of binaries.
define VARTA_BUILD_WATCH
	cd $(VARTA_SRCDIR) && \
	$(TARGET_MAKE_ENV) \
		$(TARGET_CONFIGURE_OPTS) \
		$(PKG_CARGO_ENV) \
		$(VARTA_CARGO_ENV) \
		cargo build \
			--offline \
			$(if $(BR2_ENABLE_DEBUG),,--release) \
			--manifest-path Cargo.toml \
			--locked \
			$(VARTA_CARGO_WATCH_OPTS)
endef

ifeq ($(VARTA_BINS),)
define VARTA_NOTHING_SELECTED
	@echo "varta: select BR2_PACKAGE_VARTA_WATCHD and/or BR2_PACKAGE_VARTA_WATCH" >&2
	@exit 1
endef
VARTA_PRE_BUILD_HOOKS += VARTA_NOTHING_SELECTED
endif

# The board profile, as VARTA_BOARD= in /etc/default/varta (read by the init script and
# the systemd unit). Empty: the file keeps the value it ships with.
VARTA_BOARD = $(call qstrip,$(BR2_PACKAGE_VARTA_BOARD))
ifneq ($(VARTA_BOARD),)
define VARTA_SET_BOARD
	case '$(VARTA_BOARD)' in *[!A-Za-z0-9._-]*) \
		echo "varta: BR2_PACKAGE_VARTA_BOARD '$(VARTA_BOARD)' is not a profile name" >&2; \
		exit 1;; \
	esac
	$(SED) 's/^VARTA_BOARD=.*/VARTA_BOARD=$(VARTA_BOARD)/' $(TARGET_DIR)/etc/default/varta
	grep -qx 'VARTA_BOARD=$(VARTA_BOARD)' $(TARGET_DIR)/etc/default/varta
endef
endif

# Group `varta` access to the watchdog, GPIO chips and LEDs (for --user varta, or running
# varta-watchd without root), where udev manages /dev.
ifeq ($(BR2_PACKAGE_VARTA_WATCHD)$(BR2_PACKAGE_HAS_UDEV),yy)
define VARTA_INSTALL_UDEV_RULES
	$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/udev/60-varta.rules \
		$(TARGET_DIR)/usr/lib/udev/rules.d/60-varta.rules
endef
endif

# The reference page (its --help) of each observer installed; varta-beat has none. Not in
# /usr/share/doc: Buildroot's target-finalize deletes that directory from every image.
VARTA_DOCS = $(filter varta-watchd varta-watch,$(VARTA_BINS))
VARTA_DOC_DIR = /usr/share/varta/doc

# The sysctl drop-in (net.unix.max_dgram_qlen = 512 for the heartbeat socket) goes in with
# every init system: systemd-sysctl applies it at boot, S50varta and the run script apply
# it with `sysctl -q -p` before starting varta-watchd.
define VARTA_INSTALL_TARGET_CMDS
	for b in $(VARTA_BINS); do \
		$(INSTALL) -D -m 0755 $(VARTA_BIN_DIR)/$$b $(TARGET_DIR)/usr/bin/$$b || exit 1; \
	done
	for d in $(VARTA_DOCS); do \
		$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/doc/$$d.txt $(TARGET_DIR)$(VARTA_DOC_DIR)/$$d.txt || exit 1; \
	done
	$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/varta.toml $(TARGET_DIR)/etc/varta/varta.toml
	$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/default/varta $(TARGET_DIR)/etc/default/varta
	$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/sysctl/60-varta.conf \
		$(TARGET_DIR)/usr/lib/sysctl.d/60-varta.conf
	$(VARTA_SET_BOARD)
	$(VARTA_INSTALL_UDEV_RULES)
endef

# The unprivileged user varta-watchd drops to with --user varta, and the group the udev
# rules and socket_group = "varta" refer to.
define VARTA_USERS
	varta -1 varta -1 * - - - Varta watchdog daemon
endef

# The state directory (reset reason, boot-loop count, audit log): root-only, as the
# tmpfiles entry and the systemd unit make it; the SysV script only creates it if missing.
define VARTA_PERMISSIONS
	/var/lib/varta d 700 0 0 - - - - -
endef

# BusyBox and SysV init: the script starts varta-watchd (there is none for varta-watch).
ifeq ($(BR2_PACKAGE_VARTA_WATCHD),y)
define VARTA_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(VARTA_INIT_DIR)/sysv/varta $(TARGET_DIR)/etc/init.d/S50varta
endef
endif

# systemd: units, tmpfiles entry, and a preset. Buildroot enables units with
# `systemctl preset-all`; varta-watch.service conflicts with varta-watchd.service (one socket
# owner), so it stays disabled when both are installed.
ifeq ($(BR2_PACKAGE_VARTA_WATCHD),y)
VARTA_SYSTEMD_PRESET = "enable varta-watchd.service"
define VARTA_INSTALL_WATCHD_UNIT
	$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/systemd/varta-watchd.service \
		$(TARGET_DIR)/usr/lib/systemd/system/varta-watchd.service
	$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/systemd/10-varta-owns-watchdog.conf \
		$(TARGET_DIR)/etc/systemd/system.conf.d/10-varta-owns-watchdog.conf
endef
ifeq ($(BR2_PACKAGE_VARTA_WATCH),y)
VARTA_SYSTEMD_PRESET += "disable varta-watch.service"
endif
else
VARTA_SYSTEMD_PRESET = "enable varta-watch.service"
endif

ifeq ($(BR2_PACKAGE_VARTA_WATCH),y)
define VARTA_INSTALL_WATCH_UNIT
	$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/systemd/varta-watch.service \
		$(TARGET_DIR)/usr/lib/systemd/system/varta-watch.service
endef
endif

define VARTA_INSTALL_INIT_SYSTEMD
	$(VARTA_INSTALL_WATCHD_UNIT)
	$(VARTA_INSTALL_WATCH_UNIT)
	$(INSTALL) -D -m 0644 $(VARTA_INIT_DIR)/tmpfiles/varta.conf \
		$(TARGET_DIR)/usr/lib/tmpfiles.d/varta.conf
	mkdir -p $(TARGET_DIR)/usr/lib/systemd/system-preset
	printf '%s\n' $(VARTA_SYSTEMD_PRESET) \
		> $(TARGET_DIR)/usr/lib/systemd/system-preset/50-varta.preset
endef

$(eval $(cargo-package))
