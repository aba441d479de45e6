# record.rb VAGRANTFILE: loads the Vagrantfile with a stand-in for Vagrant that
# records every setting and call, then prints them as JSON, one event each:
#   {"path": "vm.define[k8s-ctr].vm.provider[virtualbox].customize", "args": [...], "kw": {...}}
# so a test can compare what the Vagrantfile asks of Vagrant with the lab file.
require "json"

EVENTS = []

# Recorder answers every method: settings (x=) and calls with arguments are
# recorded; calls with a block yield a Recorder scoped to their first argument.
class Recorder
  def initialize(path)
    @path = path
  end

  def method_missing(name, *args, **kw, &blk)
    key = @path + name.to_s
    if blk
      blk.call(Recorder.new("#{key}[#{args.first}]."))
    elsif name.to_s.end_with?("=")
      EVENTS << { "path" => key.chomp("="), "args" => args, "kw" => kw }
    elsif args.empty? && kw.empty?
      return Recorder.new("#{key}.")
    else
      EVENTS << { "path" => key, "args" => args, "kw" => kw }
    end
    nil
  end

  def respond_to_missing?(*)
    true
  end
end

module Vagrant
  def self.configure(version)
    raise "unexpected config version #{version}" unless version == "2"
    yield Recorder.new("")
  end
end

load ARGV.fetch(0)
puts JSON.generate(EVENTS)
