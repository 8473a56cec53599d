"""Configuration: the generator namespace and fresh ConfigOpts."""

import os
import subprocess
import sys
import tempfile
import unittest

from secmig import conf as secmig_conf
from secmig.conf import opts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class ConfigTest(unittest.TestCase):

    def test_every_group_is_listed_for_the_generator(self):
        listed = {group.name for group, _ in opts.list_opts()}
        self.assertEqual({'pki', 'auth', 'policy', 'audit', 'watcher', 'nova'},
                         listed)

    def test_overrides_stay_in_their_own_configuration(self):
        # oslo.config copies registered groups shallowly: a shared group
        # object would carry one ConfigOpts' overrides into another.
        for group, opts_ in opts.list_opts():
            first, second = secmig_conf.new_conf(), secmig_conf.new_conf()
            opt = opts_[0]
            value = {'string value': 'x',
                     'integer value': 7}.get(opt.type.type_name)
            if value is None:
                continue
            first.set_override(opt.name, value, group=group.name)
            self.assertEqual(value, first[group.name][opt.name])
            self.assertEqual(opt.default, second[group.name][opt.name],
                             group.name)

    def test_defaults_follow_libvirt_layout(self):
        conf = secmig_conf.new_conf()
        self.assertEqual('/etc/pki/qemu', conf.pki.cert_dir)
        self.assertTrue(conf.pki.require_crl)

    def test_config_file_is_read(self):
        with tempfile.NamedTemporaryFile('w', suffix='.conf') as f:
            f.write('[pki]\nexpiry_margin = 7200\n')
            f.flush()
            conf = secmig_conf.new_conf(default_config_files=[f.name])
        self.assertEqual(7200, conf.pki.expiry_margin)

    def test_sample_generation(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, 'secmig.conf.sample')
            subprocess.run(
                [sys.executable, '-m', 'oslo_config.generator',
                 '--config-file', os.path.join(
                     ROOT, 'etc/secmig/secmig-config-generator.conf'),
                 '--output-file', out], check=True, cwd=ROOT)
            with open(out) as f:
                sample = f.read()
        self.assertIn('[pki]', sample)
        self.assertIn('#cert_dir = /etc/pki/qemu', sample)
        self.assertIn('[nova]', sample)
        self.assertIn('#aggregates_cache_time = 60', sample)
        self.assertIn('#auth_type = <None>', sample)
